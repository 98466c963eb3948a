//! Pictures as PNG or SVG (chosen by the output path's extension), drawn with `plotters`.
//!
//! - [`density`]: the feature-density histogram of an SAE (log10 firing frequency of each
//!   latent, dead latents counted apart), as SAELens shows it.
//! - [`heat_map`]: the activation-patching heat map (layers by positions, a diverging colour
//!   scale centred on 0, token labels).
//! - [`curves`]: training curves of `vene train-sae` (loss, MSE, L1, L0, explained variance,
//!   dead fraction by step).
//!
//! Text is drawn with DejaVu Sans, embedded in the binary (`fonts/DejaVuSans.ttf`, licence in
//! `fonts/LICENSE-DejaVuSans.txt`): no system font library is needed. Files are written
//! atomically (a temporary beside the target, renamed into place).

pub mod curves;
pub mod density;
pub mod heat_map;

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::{CliError, Result};

pub use curves::{plot_training_curves, TrainRecord};
pub use density::{density_bins, plot_feature_density, DensityBins};
pub use heat_map::plot_heat_map;

/// The font family name every plot asks for (registered once with the embedded font).
pub(crate) const FONT: &str = "sans-serif";

/// The embedded font (DejaVu Sans; Bitstream Vera licence, see `fonts/LICENSE-DejaVuSans.txt`).
static FONT_BYTES: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");

/// The largest side of a picture, in pixels.
pub const MAX_SIDE: u32 = 8192;

/// The two picture formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlotFormat {
    /// A PNG raster.
    Png,
    /// An SVG document.
    Svg,
}

impl PlotFormat {
    /// The format `path`'s extension names (`.png` or `.svg`, any case); anything else is an
    /// error naming the path.
    ///
    /// ```
    /// use vene_cli::plots::PlotFormat;
    /// assert_eq!(PlotFormat::from_path("a/b.PNG".as_ref()).unwrap(), PlotFormat::Png);
    /// assert_eq!(PlotFormat::from_path("x.svg".as_ref()).unwrap(), PlotFormat::Svg);
    /// assert!(PlotFormat::from_path("x.jpg".as_ref()).is_err());
    /// ```
    pub fn from_path(path: &Path) -> Result<PlotFormat> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(PlotFormat::Png),
            Some("svg") => Ok(PlotFormat::Svg),
            _ => Err(CliError::invalid(format!(
                "{}: a picture is written as .png or .svg (chosen by the extension)",
                path.display()
            ))),
        }
    }
}

/// A picture that can draw itself on any plotters backend.
pub(crate) trait Picture {
    /// Draws on `root` (already filled white).
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are the font shipped in the crate: parsing them cannot fail in a build
        // that compiled; if it ever did, text would be missing and drawing reports it.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES);
    });
}

fn draw_error(path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::invalid(format!(
        "{}: drawing the picture failed: {e}",
        path.display()
    ))
}

/// Renders `picture` at `width` x `height` pixels in the format of `path`'s extension.
pub(crate) fn render(
    picture: &impl Picture,
    path: &Path,
    (width, height): (u32, u32),
) -> Result<Vec<u8>> {
    let format = PlotFormat::from_path(path)?;
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(CliError::invalid(format!(
            "{}: a picture of {width} x {height} pixels (each side 1..={MAX_SIDE})",
            path.display()
        )));
    }
    register_font();
    match format {
        PlotFormat::Svg => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, (width, height)).into_drawing_area();
                root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
                picture.draw(&root).map_err(|e| draw_error(path, e))?;
                root.present().map_err(|e| draw_error(path, e))?;
            }
            Ok(text.into_bytes())
        }
        PlotFormat::Png => {
            let mut rgb = vec![0u8; width as usize * height as usize * 3];
            {
                let root =
                    BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
                root.fill(&WHITE).map_err(|e| draw_error(path, e))?;
                picture.draw(&root).map_err(|e| draw_error(path, e))?;
                root.present().map_err(|e| draw_error(path, e))?;
            }
            encode_png(&rgb, width, height).map_err(|e| draw_error(path, e))
        }
    }
}

/// Renders `picture` and writes it to `path` atomically.
pub(crate) fn save(picture: &impl Picture, path: &Path, size: (u32, u32)) -> Result<()> {
    let bytes = render(picture, path, size)?;
    vene::autoencoder::atomic::write_file(path, &bytes).map_err(CliError::io(path))
}

/// An 8-bit RGB buffer as PNG bytes.
fn encode_png(rgb: &[u8], width: u32, height: u32) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, width, height);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| e.to_string())?;
        w.write_image_data(rgb).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// The colour of `v` on a diverging scale from blue (`-max`) through white (0) to red
/// (`+max`); `max <= 0` or a NaN value gives white.
///
/// ```
/// use vene_cli::plots::diverging_rgb;
/// assert_eq!(diverging_rgb(0.0, 2.0), (255, 255, 255));
/// assert_eq!(diverging_rgb(2.0, 2.0), (178, 24, 43));
/// assert_eq!(diverging_rgb(-5.0, 2.0), (33, 102, 172));
/// ```
pub fn diverging_rgb(v: f64, max: f64) -> (u8, u8, u8) {
    const RED: (f64, f64, f64) = (178.0, 24.0, 43.0);
    const BLUE: (f64, f64, f64) = (33.0, 102.0, 172.0);
    if max.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || v.is_nan() {
        return (255, 255, 255);
    }
    let t = (v / max).clamp(-1.0, 1.0);
    let end = if t >= 0.0 { RED } else { BLUE };
    let a = t.abs();
    let mix = |e: f64| (255.0 + (e - 255.0) * a).round() as u8;
    (mix(end.0), mix(end.1), mix(end.2))
}

/// A short label for a token: at most `max_chars` characters (an ellipsis marks a cut).
pub(crate) fn short_label(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    /// Width and height from a PNG's IHDR chunk, after checking the signature.
    pub fn png_size(bytes: &[u8]) -> (u32, u32) {
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&bytes[12..16], b"IHDR");
        let be =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        (be(16), be(20))
    }
}
