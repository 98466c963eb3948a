//! The activation-patching heat map: one row per layer, one column per position (token labels
//! below), each cell coloured on a diverging scale centred on 0 (blue negative, white 0, red
//! positive), with a colour bar.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{diverging_rgb, short_label, Picture, FONT};
use crate::{CliError, Result};

/// A heat map to draw: `values[row][column]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HeatMap {
    /// The title (first line) above the map.
    pub title: String,
    /// What the colour means (second line above the map), e.g. `Δ logit diff`.
    pub value_label: String,
    /// A label per row (drawn left of it, top row first), e.g. `layer 0`.
    pub rows: Vec<String>,
    /// A label per column (drawn below it; `\n` splits it into lines), e.g. `3\nParis`.
    pub columns: Vec<String>,
    /// The values, one vector per row, each as long as `columns`.
    pub values: Vec<Vec<f32>>,
}

/// Pixel sizes of the layout.
const TITLE_H: i32 = 64;
const COLUMN_LABELS_H: i32 = 60;
const COLOUR_BAR_W: i32 = 110;
const MARGIN: i32 = 16;
/// The widest picture made (columns get narrower, labels sparser).
const MAX_WIDTH: i32 = 2400;

impl HeatMap {
    /// Checks the shape: a label per row and column, every row as long as `columns`, at least
    /// one cell.
    fn check(&self) -> Result<()> {
        let (r, c) = (self.rows.len(), self.columns.len());
        if r == 0 || c == 0 {
            return Err(CliError::invalid("heat map: no rows or no columns"));
        }
        if self.values.len() != r {
            return Err(CliError::invalid(format!(
                "heat map: {r} row labels but {} rows of values",
                self.values.len()
            )));
        }
        if let Some((i, row)) = self.values.iter().enumerate().find(|(_, v)| v.len() != c) {
            return Err(CliError::invalid(format!(
                "heat map: row {i} has {} values, but there are {c} columns",
                row.len()
            )));
        }
        Ok(())
    }

    /// The largest |value| (the colour scale runs from minus it to it); 0 when all are 0.
    pub fn scale(&self) -> f64 {
        self.values
            .iter()
            .flatten()
            .filter(|v| v.is_finite())
            .fold(0f64, |m, v| m.max(f64::from(v.abs())))
    }

    fn layout(&self) -> Layout {
        let n = self.columns.len() as i32;
        let row_label_w = self
            .rows
            .iter()
            .map(|r| r.chars().count() as i32 * 9 + 16)
            .max()
            .unwrap_or(40);
        let fixed = MARGIN * 2 + row_label_w + COLOUR_BAR_W;
        let cell_w = ((MAX_WIDTH - fixed) / n).clamp(1, 90);
        let cell_h = (420 / self.rows.len() as i32).clamp(14, 56);
        Layout {
            left: MARGIN + row_label_w,
            top: TITLE_H,
            cell_w,
            cell_h,
            width: (fixed + cell_w * n).max(480),
            height: TITLE_H + cell_h * self.rows.len() as i32 + COLUMN_LABELS_H + MARGIN,
        }
    }

    /// Draws the heat map to `path` (PNG or SVG by its extension), written atomically. The
    /// picture grows with the number of columns (up to 2400 pixels wide; then cells narrow and
    /// every k-th column is labelled).
    pub fn save(&self, path: &Path) -> Result<()> {
        self.check()?;
        let l = self.layout();
        super::save(self, path, (l.width as u32, l.height as u32))
    }
}

struct Layout {
    left: i32,
    top: i32,
    cell_w: i32,
    cell_h: i32,
    width: i32,
    height: i32,
}

/// Draws the activation-patching heat map of `values[layer][position]` to `path`: rows
/// `layer L` for each of `layers` (top row first), columns labelled with their position and
/// `tokens[position]`, a diverging colour scale centred on 0, `title` above.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("patch.svg");
/// let values = vec![vec![0.5, -1.0, 2.0], vec![0.0, 0.25, -0.5]];
/// let tokens = ["The", "<cat>", "sat"].map(String::from);
/// vene_cli::plots::plot_heat_map(&values, &[0, 1], &tokens, "patching", &path)?;
/// let svg = std::fs::read_to_string(&path)?;
/// assert!(svg.contains("&lt;cat&gt;") && svg.contains("layer 1"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plot_heat_map(
    values: &[Vec<f32>],
    layers: &[usize],
    tokens: &[String],
    title: &str,
    path: &Path,
) -> Result<()> {
    HeatMap {
        title: title.to_string(),
        value_label: "Δ logit diff (source top - base top)".to_string(),
        rows: layers.iter().map(|l| format!("layer {l}")).collect(),
        columns: tokens
            .iter()
            .enumerate()
            .map(|(p, t)| format!("{p}\n{t}"))
            .collect(),
        values: values.to_vec(),
    }
    .save(path)
}

fn text_style(size: u32, h: HPos, v: VPos) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font())
        .color(&BLACK)
        .pos(Pos::new(h, v))
}

impl Picture for HeatMap {
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        let l = self.layout();
        let max = self.scale();
        let n = self.columns.len() as i32;
        let title = short_label(&self.title, ((l.width - 2 * MARGIN) / 9).max(8) as usize);
        root.draw(&Text::new(
            title,
            (l.width / 2, 8),
            text_style(18, HPos::Center, VPos::Top),
        ))?;
        root.draw(&Text::new(
            self.value_label.clone(),
            (l.width / 2, 34),
            text_style(14, HPos::Center, VPos::Top),
        ))?;
        let show_values = l.cell_w >= 56 && l.cell_h >= 24;
        for (r, (label, row)) in self.rows.iter().zip(&self.values).enumerate() {
            let y = l.top + r as i32 * l.cell_h;
            root.draw(&Text::new(
                label.clone(),
                (l.left - 8, y + l.cell_h / 2),
                text_style(14, HPos::Right, VPos::Center),
            ))?;
            for (c, v) in row.iter().enumerate() {
                let x = l.left + c as i32 * l.cell_w;
                let (cr, cg, cb) = diverging_rgb(f64::from(*v), max);
                root.draw(&Rectangle::new(
                    [(x, y), (x + l.cell_w, y + l.cell_h)],
                    RGBColor(cr, cg, cb).filled(),
                ))?;
                if show_values {
                    let strong = max > 0.0 && f64::from(v.abs()) / max > 0.7;
                    let colour = if strong { WHITE } else { BLACK };
                    root.draw(&Text::new(
                        format!("{v:+.2}"),
                        (x + l.cell_w / 2, y + l.cell_h / 2),
                        text_style(12, HPos::Center, VPos::Center).color(&colour),
                    ))?;
                }
            }
        }
        let bottom = l.top + self.rows.len() as i32 * l.cell_h;
        root.draw(&Rectangle::new(
            [(l.left, l.top), (l.left + n * l.cell_w, bottom)],
            BLACK.mix(0.4).stroke_width(1),
        ))?;
        // Column labels: every k-th, so that labels about 7 px per character do not overlap.
        let chars = ((l.cell_w - 4) / 7).max(1) as usize;
        let widest = self
            .columns
            .iter()
            .flat_map(|c| c.lines().map(|s| s.chars().count()))
            .max()
            .unwrap_or(1)
            .clamp(1, 10) as i32;
        let every = ((widest * 7 + 6) / l.cell_w.max(1) + 1).max(1) as usize;
        let chars = if every > 1 { 10 } else { chars };
        for (c, label) in self.columns.iter().enumerate().step_by(every) {
            let x = l.left + c as i32 * l.cell_w + l.cell_w / 2;
            for (k, line) in label.lines().take(3).enumerate() {
                root.draw(&Text::new(
                    short_label(line, chars),
                    (x, bottom + 6 + 18 * k as i32),
                    text_style(13, HPos::Center, VPos::Top),
                ))?;
            }
        }
        // The colour bar: +max at the top, -max at the bottom.
        let (bx, bw) = (l.width - COLOUR_BAR_W + 16, 18);
        let (by0, by1) = (l.top, bottom.max(l.top + 60));
        let steps = (by1 - by0).max(1);
        for i in 0..steps {
            let t = 1.0 - 2.0 * f64::from(i) / f64::from(steps - 1).max(1.0);
            let (cr, cg, cb) = diverging_rgb(t, 1.0);
            root.draw(&Rectangle::new(
                [(bx, by0 + i), (bx + bw, by0 + i + 1)],
                RGBColor(cr, cg, cb).filled(),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(bx, by0), (bx + bw, by1)],
            BLACK.mix(0.4).stroke_width(1),
        ))?;
        for (y, v) in [(by0, max), ((by0 + by1) / 2, 0.0), (by1, -max)] {
            root.draw(&Text::new(
                format!("{v:+.2}"),
                (bx + bw + 6, y),
                text_style(12, HPos::Left, VPos::Center),
            ))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(n: usize) -> HeatMap {
        HeatMap {
            title: "t".into(),
            value_label: "v".into(),
            rows: vec!["layer 0".into(), "layer 1".into()],
            columns: (0..n).map(|i| format!("{i}\ntok{i}")).collect(),
            values: vec![vec![1.0; n], vec![-0.5; n]],
        }
    }

    #[test]
    fn png_and_svg_with_the_layout_size() {
        let dir = tempfile::tempdir().unwrap();
        let m = map(4);
        let l = m.layout();
        let png_path = dir.path().join("h.png");
        m.save(&png_path).unwrap();
        let bytes = std::fs::read(&png_path).unwrap();
        let size = super::super::test_util::png_size(&bytes);
        assert_eq!(size, (l.width as u32, l.height as u32));
        let svg_path = dir.path().join("h.svg");
        m.save(&svg_path).unwrap();
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        // Every cell is a rectangle in its colour: 4 red (+1 = max) and 4 half blue.
        let red = format!("#{:02X}{:02X}{:02X}", 178, 24, 43);
        let (r, g, b) = diverging_rgb(-0.5, 1.0);
        let blue = format!("#{r:02X}{g:02X}{b:02X}");
        assert!(svg.matches(&red).count() >= 4, "{red}");
        assert!(svg.matches(&blue).count() >= 4, "{blue}");
        assert!(svg.contains("tok3") && svg.contains("+1.00") && svg.contains("-0.50"));
    }

    #[test]
    fn many_columns_stay_within_the_width_and_bad_shapes_fail() {
        let m = map(1000);
        let l = m.layout();
        assert!(l.width <= MAX_WIDTH && l.cell_w >= 1, "{}", l.width);
        let mut bad = map(3);
        bad.values[1].pop();
        let e = bad.check().unwrap_err().to_string();
        assert!(e.contains("row 1 has 2 values"), "{e}");
    }
}
