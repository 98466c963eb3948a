//! The feature-density histogram of an SAE, as SAELens shows it: x is log10 of each latent's
//! firing frequency (the fraction of tokens where it is > 0); dead latents (frequency 0) have
//! no log and are counted apart, in the title.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{Picture, FONT};
use crate::{CliError, Result};

/// Width of one bin in log10 units (4 bins per decade).
pub const BIN_WIDTH: f64 = 0.25;

/// Densities binned by log10, with the dead latents apart.
#[derive(Debug, Clone, PartialEq)]
pub struct DensityBins {
    /// Lower edge of the first bin (log10 units; a multiple of the bin width).
    pub start: f64,
    /// Width of each bin (log10 units).
    pub width: f64,
    /// Latents per bin: bin `i` holds `start + i*width <= log10(d) < start + (i+1)*width`,
    /// the last bin also its upper edge.
    pub counts: Vec<usize>,
    /// Latents that never fired (density 0).
    pub dead: usize,
}

impl DensityBins {
    /// The latents counted: the bins' and the dead ones.
    pub fn total(&self) -> usize {
        self.counts.iter().sum::<usize>() + self.dead
    }

    /// Lower and upper edge of bin `i` (log10 units).
    pub fn edges(&self, i: usize) -> (f64, f64) {
        let lo = self.start + i as f64 * self.width;
        (lo, lo + self.width)
    }
}

/// Bins `densities` (each in `[0, 1]`) by `log10` into bins `width` wide, whose edges are
/// multiples of `width`; zeros are counted as dead. An empty slice, a value outside `[0, 1]`
/// or a NaN is an error naming it.
///
/// ```
/// use vene_cli::plots::density_bins;
/// // log10: -2, -1.5 (twice), 0; two dead latents.
/// let d = [0.01, 10f64.powf(-1.5), 10f64.powf(-1.5), 1.0, 0.0, 0.0];
/// let b = density_bins(&d, 0.5)?;
/// assert_eq!((b.start, b.dead), (-2.0, 2));
/// assert_eq!(b.counts, vec![1, 2, 0, 1]); // [-2,-1.5) [-1.5,-1) [-1,-0.5) [-0.5,0]
/// # Ok::<(), vene_cli::CliError>(())
/// ```
pub fn density_bins(densities: &[f64], width: f64) -> Result<DensityBins> {
    if !(width.is_finite() && width > 0.0) {
        return Err(CliError::invalid(format!(
            "density histogram: bin width {width} (must be > 0)"
        )));
    }
    if densities.is_empty() {
        return Err(CliError::invalid(
            "density histogram: no latents (the densities are empty)",
        ));
    }
    if let Some((i, d)) = densities
        .iter()
        .enumerate()
        .find(|(_, d)| !(0.0..=1.0).contains(*d))
    {
        return Err(CliError::invalid(format!(
            "density histogram: latent {i} has density {d}; a firing frequency is in [0, 1]"
        )));
    }
    let logs: Vec<f64> = densities
        .iter()
        .filter(|d| **d > 0.0)
        .map(|d| d.log10())
        .collect();
    let dead = densities.len() - logs.len();
    // Index of the bin holding x, on the grid of multiples of `width`, with a little slack
    // so that a value a rounding error below an edge (log10(0.01) = -1.9999...) lands on it.
    let grid = |x: f64| (x / width + 1e-9).floor();
    let (lo, hi) = logs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(grid(x)), b.max(grid(x)))
        });
    if logs.is_empty() {
        return Ok(DensityBins {
            start: -width,
            width,
            counts: vec![0],
            dead,
        });
    }
    // The top bin is closed: a density of 1 (log 0) goes into the bin below 0.
    let top = if hi >= 0.0 { hi - 1.0 } else { hi };
    let lo = lo.min(top);
    let n = (top - lo) as usize + 1;
    let mut counts = vec![0usize; n.max(1)];
    for &x in &logs {
        let i = ((grid(x) - lo).max(0.0) as usize).min(counts.len() - 1);
        counts[i] += 1;
    }
    Ok(DensityBins {
        start: lo * width,
        width,
        counts,
        dead,
    })
}

/// Draws the feature-density histogram of `densities` (one per latent: the fraction of
/// tokens where it fired, in `[0, 1]`) to `path`: PNG or SVG by its extension, 800 x 500,
/// written atomically. Bins are a quarter of a decade ([`BIN_WIDTH`]); the title states how
/// many latents are dead (never fired) and are not in the bars.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("density.svg");
/// vene_cli::plots::plot_feature_density(&[0.5, 0.01, 0.0, 0.002], &path)?;
/// let svg = std::fs::read_to_string(&path)?;
/// assert!(svg.starts_with("<svg") && svg.contains("1 dead"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plot_feature_density(densities: &[f64], path: &Path) -> Result<()> {
    let bins = density_bins(densities, BIN_WIDTH)?;
    super::save(&DensityPicture { bins }, path, (800, 500))
}

struct DensityPicture {
    bins: DensityBins,
}

impl Picture for DensityPicture {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let b = &self.bins;
        let total = b.total();
        let alive = total - b.dead;
        let title = format!(
            "Feature density: {total} latents, {} dead ({:.1}%) not shown",
            b.dead,
            100.0 * b.dead as f64 / total.max(1) as f64
        );
        let (x0, x1) = (b.start, b.start + b.counts.len() as f64 * b.width);
        let ymax = b.counts.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.1;
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(x0..x1, 0f64..ymax)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("log10(firing frequency)")
            .y_desc("latents")
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .y_label_formatter(&|v| format!("{v:.0}"))
            .x_label_formatter(&|v| format!("{v:.1}"))
            .draw()?;
        let fill = RGBColor(70, 110, 190);
        chart
            .draw_series(b.counts.iter().enumerate().map(|(i, &c)| {
                let (lo, hi) = b.edges(i);
                Rectangle::new([(lo, 0.0), (hi, c as f64)], fill.filled())
            }))?
            .label(format!("{alive} latents that fired"))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], fill.filled()));
        chart
            .draw_series(b.counts.iter().enumerate().map(|(i, &c)| {
                let (lo, hi) = b.edges(i);
                Rectangle::new([(lo, 0.0), (hi, c as f64)], WHITE.stroke_width(1))
            }))?
            .label(format!("{} dead (frequency 0)", b.dead))
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], BLACK.stroke_width(1)));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font((FONT, 14))
            .draw()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_by_quarter_decades_with_dead_apart() {
        // log10: -3 (a bin edge), -2.9 (same bin), -1.3010 (bin [-1.5,-1.25)), -0.1249
        // (last bin [-0.25,0]), 0 (density 1: the closed top edge, last bin).
        let d = [0.001, 10f64.powf(-2.9), 0.05, 0.75, 1.0, 0.0];
        let b = density_bins(&d, 0.25).unwrap();
        assert_eq!(b.start, -3.0);
        assert_eq!(b.dead, 1);
        assert_eq!(b.total(), 6);
        //               -3  -2.75 -2.5 -2.25 -2 -1.75 -1.5 -1.25 -1 -.75 -.5 -.25
        assert_eq!(b.counts, vec![2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2]);
        assert_eq!(b.edges(6), (-1.5, -1.25));
    }

    #[test]
    fn all_dead_and_bad_values() {
        let b = density_bins(&[0.0, 0.0], 0.25).unwrap();
        assert_eq!((b.dead, b.counts.iter().sum::<usize>()), (2, 0));
        for bad in [&[1.5][..], &[-0.1], &[f64::NAN], &[]] {
            assert!(density_bins(bad, 0.25).is_err(), "{bad:?}");
        }
        let e = density_bins(&[0.1, 2.0], 0.25).unwrap_err().to_string();
        assert!(e.contains("latent 1 has density 2"), "{e}");
    }

    #[test]
    fn writes_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let d = [0.3, 0.02, 0.02, 0.0005, 0.0, 0.0, 0.0];
        let png_path = dir.path().join("d.png");
        plot_feature_density(&d, &png_path).unwrap();
        let bytes = std::fs::read(&png_path).unwrap();
        assert_eq!(super::super::test_util::png_size(&bytes), (800, 500));
        let svg_path = dir.path().join("d.svg");
        plot_feature_density(&d, &svg_path).unwrap();
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("7 latents, 3 dead"), "{svg}");
        assert!(plot_feature_density(&d, &dir.path().join("d.gif")).is_err());
    }
}
