//! The norms of every family: vene-kernels' CPU kernels for f32, candle's fused kernels for
//! other dtypes and devices when nothing is tracked by autograd, and the differentiable
//! compositions otherwise (vene-kernels picks).

use candle_core::{DType, Tensor, D};

use super::kernels::kernel_error;
use super::spec::NormKind;
use crate::Result;

/// One norm layer with its weights.
#[derive(Debug, Clone)]
pub(crate) struct Norm {
    kind: NormKind,
    /// Scale: `w` as stored (Gemma's offset too), or ones in f32 (no params).
    weight: Tensor,
    /// Layer-norm shift: the bias, or zeros in f32 (no params).
    bias: Option<Tensor>,
}

impl Norm {
    /// A norm of `kind` with the checkpoint's `weight` (and `bias` for a layer norm); for
    /// [`NormKind::LayerNormNoParams`] both are ignored and `width` sets the size.
    pub(crate) fn new(
        kind: NormKind,
        weight: Option<Tensor>,
        bias: Option<Tensor>,
        width: usize,
        device: &candle_core::Device,
    ) -> Result<Self> {
        let (weight, bias) = match kind {
            NormKind::LayerNormNoParams { .. } => (
                Tensor::ones(width, DType::F32, device)?,
                Some(Tensor::zeros(width, DType::F32, device)?),
            ),
            NormKind::GemmaRmsNorm { .. } => (weight.ok_or_else(|| missing("norm weight"))?, None),
            NormKind::LayerNorm { .. } => (weight.ok_or_else(|| missing("norm weight"))?, bias),
            NormKind::RmsNorm { .. } => (weight.ok_or_else(|| missing("norm weight"))?, None),
        };
        Ok(Self { kind, weight, bias })
    }

    /// Normalises `x` over its last dimension.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dtype = x.dtype();
        match self.kind {
            NormKind::LayerNorm { eps } => {
                let bias = self
                    .bias
                    .as_ref()
                    .ok_or_else(|| missing("layer norm bias"))?;
                layer_norm(x, &self.weight, bias, eps)
            }
            NormKind::LayerNormNoParams { eps } => {
                let bias = self
                    .bias
                    .as_ref()
                    .ok_or_else(|| missing("layer norm bias"))?;
                let y = layer_norm(&x.to_dtype(DType::F32)?, &self.weight, bias, eps)?;
                Ok(y.to_dtype(dtype)?)
            }
            NormKind::RmsNorm { eps } => {
                if dtype == DType::F32 || dtype == DType::F64 {
                    return rms_norm(x, &self.weight.to_dtype(dtype)?, eps);
                }
                // HF: normalise in f32, cast back, then scale in the model dtype.
                let x32 = x.to_dtype(DType::F32)?;
                let ones = Tensor::ones(x.dim(D::Minus1)?, DType::F32, x.device())?;
                let y = rms_norm(&x32, &ones, eps)?.to_dtype(dtype)?;
                Ok(y.broadcast_mul(&self.weight)?)
            }
            NormKind::GemmaRmsNorm { eps } => {
                // HF: everything in f32, scaled by (1 + w.float()).
                let scale = (self.weight.to_dtype(DType::F32)? + 1.0)?;
                let y = rms_norm(&x.to_dtype(DType::F32)?, &scale, eps)?;
                Ok(y.to_dtype(dtype)?)
            }
        }
    }

    /// Every tensor of the norm, mapped by `f` (device/dtype moves, detaching). The constant
    /// f32 parameters of OLMo's norms stay in f32.
    pub(crate) fn map(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        let keep_f32 = matches!(self.kind, NormKind::LayerNormNoParams { .. });
        let g = |t: &Tensor| -> Result<Tensor> {
            let y = f(t)?;
            if keep_f32 {
                Ok(y.to_dtype(DType::F32)?)
            } else {
                Ok(y)
            }
        };
        Ok(Self {
            kind: self.kind,
            weight: g(&self.weight)?,
            bias: self.bias.as_ref().map(g).transpose()?,
        })
    }
}

fn missing(what: &str) -> crate::ModelError {
    crate::ModelError::InvalidConfig(format!("internal: {what} missing"))
}

/// Layer norm over the last dimension (biased variance, eps inside the root).
pub(crate) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    vene_kernels::layer_norm(x, w, b, eps).map_err(kernel_error)
}

/// RMS norm over the last dimension.
pub(crate) fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    vene_kernels::rms_norm(x, w, eps).map_err(kernel_error)
}
