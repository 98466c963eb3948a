//! A linear layer whose weight is stored either `[out, in]` (nn.Linear) or `[in, out]`
//! (GPT-2's Conv1D), used as stored: no transposed copy is made. vene-kernels runs it (on the
//! CPU in f32 with the bias fused into the matmul; `matmul` + `broadcast_add` otherwise).

use candle_core::Tensor;
use vene_kernels::WeightLayout;

use super::kernels::kernel_error;
use crate::Result;

/// `y = x W^T + b` (or `x W + b` for Conv1D-oriented weights).
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    /// The weight is `[in, out]`.
    in_out: bool,
}

impl Linear {
    pub(crate) fn new(weight: Tensor, bias: Option<Tensor>, in_out: bool) -> Self {
        Self {
            weight,
            bias,
            in_out,
        }
    }

    /// Applies the layer to `x` `[..., in]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let layout = if self.in_out {
            WeightLayout::InOut
        } else {
            WeightLayout::OutIn
        };
        vene_kernels::linear(x, &self.weight, self.bias.as_ref(), layout).map_err(kernel_error)
    }

    /// Every tensor mapped by `f`.
    pub(crate) fn map(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        Ok(Self {
            weight: f(&self.weight)?,
            bias: self.bias.as_ref().map(f).transpose()?,
            in_out: self.in_out,
        })
    }
}
