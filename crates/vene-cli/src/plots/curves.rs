//! Training curves of `vene train-sae`: four panels by step (loss and MSE; L1; L0; explained
//! variance and dead fraction), from the records it logs.

use std::path::Path;

use plotters::coord::ranged1d::ValueFormatter;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Picture, FONT};
use crate::{CliError, Result};

/// What `vene train-sae` records at a logged step (one line of its `--metrics` file).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainRecord {
    /// Steps done (1-based).
    pub step: usize,
    /// Total loss of the step's batch (MSE + L1 coefficient x L1).
    pub loss: f64,
    /// Reconstruction error (sum over features, mean over rows).
    pub mse: f64,
    /// L1 of the latents (before the coefficient), mean over rows.
    pub l1: f64,
    /// Mean number of active latents per row.
    pub l0: f64,
    /// Explained variance of the batch's reconstruction.
    pub explained_variance: f64,
    /// Fraction of latents dead over the tracking window.
    pub dead_fraction: f64,
    /// Learning rate of the step.
    pub lr: f64,
}

impl From<&vene::autoencoder::TrainProgress> for TrainRecord {
    fn from(p: &vene::autoencoder::TrainProgress) -> Self {
        TrainRecord {
            step: p.step,
            loss: p.loss,
            mse: p.mse,
            l1: p.l1,
            l0: p.l0,
            explained_variance: p.explained_variance,
            dead_fraction: p.dead_fraction,
            lr: p.lr,
        }
    }
}

impl TrainRecord {
    /// The record as one JSON object on one line (no newline), with the field names above.
    ///
    /// ```
    /// let r = vene_cli::plots::TrainRecord {
    ///     step: 3, loss: 1.5, mse: 1.0, l1: 5.0, l0: 2.0,
    ///     explained_variance: 0.5, dead_fraction: 0.25, lr: 1e-3,
    /// };
    /// let v: serde_json::Value = serde_json::from_str(&r.to_json_line()).unwrap();
    /// assert_eq!(v["step"], 3);
    /// assert_eq!(v["l0"], 2.0);
    /// ```
    pub fn to_json_line(&self) -> String {
        serde_json::json!({
            "step": self.step,
            "loss": self.loss,
            "mse": self.mse,
            "l1": self.l1,
            "l0": self.l0,
            "explained_variance": self.explained_variance,
            "dead_fraction": self.dead_fraction,
            "lr": self.lr,
        })
        .to_string()
    }
}

/// Draws the training curves of `records` (in step order) to `path`: PNG or SVG by its
/// extension, 1000 x 700, written atomically. Panels: loss and MSE (log scale when all are
/// positive), L1, L0, explained variance and dead fraction.
///
/// ```
/// use vene_cli::plots::{plot_training_curves, TrainRecord};
/// let records: Vec<TrainRecord> = (1..=5)
///     .map(|s| TrainRecord {
///         step: s, loss: 2.0 / s as f64, mse: 1.0 / s as f64, l1: 10.0, l0: 4.0,
///         explained_variance: 0.1 * s as f64, dead_fraction: 0.0, lr: 1e-3,
///     })
///     .collect();
/// let dir = tempfile::tempdir()?;
/// plot_training_curves(&records, &dir.path().join("curves.svg"))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plot_training_curves(records: &[TrainRecord], path: &Path) -> Result<()> {
    if records.is_empty() {
        return Err(CliError::invalid("training curves: no records"));
    }
    super::save(&Curves { records }, path, (1000, 700))
}

struct Curves<'a> {
    records: &'a [TrainRecord],
}

/// One line of a panel: a name, a colour and a value per record.
type Line<'a> = (&'a str, RGBColor, fn(&TrainRecord) -> f64);

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    records: &[TrainRecord],
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let x0 = records.first().map_or(0, |r| r.step) as f64;
    let x1 = (records.last().map_or(1, |r| r.step) as f64).max(x0 + 1.0);
    let values = || {
        lines
            .iter()
            .flat_map(|(_, _, f)| records.iter().map(f))
            .filter(|v| v.is_finite())
    };
    let (lo, hi) = values().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    let (lo, hi) = if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) };
    let log = lo > 0.0 && hi / lo > 20.0;
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, (FONT, 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(60);
    let pad = ((hi - lo) * 0.05).max(1e-6);
    if log {
        let chart = builder.build_cartesian_2d(x0..x1, (lo * 0.9..hi * 1.1).log_scale())?;
        draw_lines(chart, records, lines, legend)
    } else {
        let chart = builder.build_cartesian_2d(x0..x1, (lo - pad)..(hi + pad))?;
        draw_lines(chart, records, lines, legend)
    }
}

/// Draws the mesh, one line per entry of `lines` and the legend on `chart`, whatever its
/// y scale (linear or log).
fn draw_lines<'a, DB, Y>(
    mut chart: ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    records: &[TrainRecord],
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc("step")
        .label_style((FONT, 12))
        .axis_desc_style((FONT, 13))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| tick(*v))
        .draw()?;
    for (name, colour, f) in lines {
        let c = *colour;
        chart
            .draw_series(LineSeries::new(
                records.iter().map(|r| (r.step as f64, f(r))),
                c.stroke_width(2),
            ))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], c.stroke_width(2)));
    }
    draw_legend(&mut chart, legend)
}

/// A tick label with as many decimals as the value's size needs.
fn tick(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 0.1 || a == 0.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1e}")
    }
}

fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font((FONT, 12))
        .draw()
}

impl Picture for Curves<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let root = root.titled("SAE training", (FONT, 22))?;
        let panels = root.split_evenly((2, 2));
        let blue = RGBColor(40, 90, 180);
        let orange = RGBColor(230, 120, 20);
        let green = RGBColor(30, 140, 70);
        let r = self.records;
        panel(
            &panels[0],
            "loss and MSE",
            r,
            &[("loss", blue, |x| x.loss), ("MSE", orange, |x| x.mse)],
            SeriesLabelPosition::UpperRight,
        )?;
        panel(
            &panels[1],
            "L1 (before the coefficient)",
            r,
            &[("L1", blue, |x| x.l1)],
            SeriesLabelPosition::UpperRight,
        )?;
        panel(
            &panels[2],
            "L0 (active latents per token)",
            r,
            &[("L0", green, |x| x.l0)],
            SeriesLabelPosition::UpperRight,
        )?;
        panel(
            &panels[3],
            "explained variance, dead fraction",
            r,
            &[
                ("explained variance", blue, |x| x.explained_variance),
                ("dead fraction", orange, |x| x.dead_fraction),
            ],
            // Explained variance rises to the top: keep the legend off it.
            SeriesLabelPosition::MiddleRight,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<TrainRecord> {
        (1..=10)
            .map(|s| TrainRecord {
                step: s * 10,
                loss: 100.0 / s as f64,
                mse: 50.0 / s as f64,
                l1: 3.0,
                l0: 8.0 - s as f64 * 0.5,
                explained_variance: s as f64 / 10.0,
                dead_fraction: 0.1,
                lr: 1e-3,
            })
            .collect()
    }

    #[test]
    fn png_and_svg_with_every_panel() {
        let dir = tempfile::tempdir().unwrap();
        let png_path = dir.path().join("c.png");
        plot_training_curves(&records(), &png_path).unwrap();
        let bytes = std::fs::read(&png_path).unwrap();
        assert_eq!(super::super::test_util::png_size(&bytes), (1000, 700));
        let svg_path = dir.path().join("c.svg");
        plot_training_curves(&records(), &svg_path).unwrap();
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        for title in [
            "loss and MSE",
            "L0 (active latents",
            "dead fraction",
            "step",
        ] {
            assert!(svg.contains(title), "{title}");
        }
        // One polyline per curve: loss, MSE, L1, L0, EV, dead fraction.
        assert!(svg.matches("<polyline").count() >= 6, "a line per curve");
        assert!(plot_training_curves(&[], &svg_path).is_err());
    }
}
