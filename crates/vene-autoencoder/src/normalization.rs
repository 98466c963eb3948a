//! Input normalisation that an SAE applies before encoding and undoes after decoding
//! (SAELens `normalize_activations`).

use candle_core::{Tensor, D};

use crate::Result;

/// SAELens's `layer_norm` epsilon (added to the standard deviation, not to the variance).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// How an SAE normalises each input row before encoding, and un-normalises the
/// reconstruction with the same row's statistics (SAELens `normalize_activations`).
///
/// - `None`: the input is encoded as it is.
/// - `LayerNorm`: `mu = mean(x)`, `std = std(x - mu)` (unbiased, as torch's `std`),
///   the encoder sees `(x - mu) / (std + 1e-5)`; the reconstruction is `y * std + mu`
///   (without the epsilon, as SAELens does).
/// - `ConstantNormRescale`: `c = sqrt(d_in) / ||x||`, the encoder sees `x * c`; the
///   reconstruction is `y / c`. An all-zero row gives non-finite values, as in SAELens.
///
/// SAELens's `expected_average_only_in` is not here: it is a constant factor, which the
/// loader folds into the weights.
///
/// Because the statistics are the input's, the reconstruction of a latent depends on which
/// input it stands for: see [`crate::Autoencoder::decode_for`].
///
/// ```
/// use vene_autoencoder::InputNormalization;
/// assert_eq!(InputNormalization::from_saelens_name("layer_norm"), Some(InputNormalization::LayerNorm));
/// assert_eq!(InputNormalization::ConstantNormRescale.saelens_name(), "constant_norm_rescale");
/// assert_eq!(InputNormalization::from_saelens_name("expected_average_only_in"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputNormalization {
    /// No normalisation.
    #[default]
    None,
    /// Per-row mean and standard deviation (SAELens `layer_norm`).
    LayerNorm,
    /// Per-row rescale to norm `sqrt(d_in)` (SAELens `constant_norm_rescale`).
    ConstantNormRescale,
}

impl InputNormalization {
    /// SAELens's name: `none`, `layer_norm`, `constant_norm_rescale`.
    pub fn saelens_name(self) -> &'static str {
        match self {
            InputNormalization::None => "none",
            InputNormalization::LayerNorm => "layer_norm",
            InputNormalization::ConstantNormRescale => "constant_norm_rescale",
        }
    }

    /// The normalisation SAELens names `name` (`none`, `layer_norm`,
    /// `constant_norm_rescale`), or `None` for any other name.
    pub fn from_saelens_name(name: &str) -> Option<Self> {
        match name {
            "none" => Some(InputNormalization::None),
            "layer_norm" => Some(InputNormalization::LayerNorm),
            "constant_norm_rescale" => Some(InputNormalization::ConstantNormRescale),
            _ => None,
        }
    }

    /// The statistics of each row of `x` (already in the weights' dtype), or `None` when
    /// there is no normalisation.
    pub(crate) fn stats(self, x: &Tensor) -> Result<Option<NormStats>> {
        let d = x.dim(D::Minus1)?;
        Ok(match self {
            InputNormalization::None => None,
            InputNormalization::LayerNorm => {
                let mu = x.mean_keepdim(D::Minus1)?;
                let centred = x.broadcast_sub(&mu)?;
                let denom = (d as f64 - 1.0).max(0.0);
                let var = (centred.sqr()?.sum_keepdim(D::Minus1)? / denom)?;
                Some(NormStats::LayerNorm {
                    mu,
                    std: var.sqrt()?,
                })
            }
            InputNormalization::ConstantNormRescale => {
                let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
                let coeff = norm.recip()?.affine((d as f64).sqrt(), 0.0)?;
                Some(NormStats::ConstantNormRescale { coeff })
            }
        })
    }
}

/// Per-row statistics of an input, `[..., 1]` each.
#[derive(Debug, Clone)]
pub(crate) enum NormStats {
    LayerNorm { mu: Tensor, std: Tensor },
    ConstantNormRescale { coeff: Tensor },
}

impl NormStats {
    /// What the encoder sees of `x`.
    pub(crate) fn normalize(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            NormStats::LayerNorm { mu, std } => x
                .broadcast_sub(mu)?
                .broadcast_div(&(std + LAYER_NORM_EPS)?)?,
            NormStats::ConstantNormRescale { coeff } => x.broadcast_mul(coeff)?,
        })
    }

    /// The reconstruction `y` (in normalised space) in the input's space.
    pub(crate) fn unnormalize(&self, y: &Tensor) -> Result<Tensor> {
        Ok(match self {
            NormStats::LayerNorm { mu, std } => y.broadcast_mul(std)?.broadcast_add(mu)?,
            NormStats::ConstantNormRescale { coeff } => y.broadcast_div(coeff)?,
        })
    }

    /// The factor by which a change of the normalised reconstruction is scaled in the
    /// input's space, `[..., 1]`.
    pub(crate) fn scale(&self) -> Result<Tensor> {
        Ok(match self {
            NormStats::LayerNorm { std, .. } => std.clone(),
            NormStats::ConstantNormRescale { coeff } => coeff.recip()?,
        })
    }
}
