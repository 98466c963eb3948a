//! A linear layer whose weight is stored either `[out, in]` (nn.Linear) or `[in, out]`
//! (GPT-2's Conv1D), used as stored: no transposed copy is made.

use candle_core::Tensor;

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

    /// The output width.
    pub(crate) fn out_dim(&self) -> Result<usize> {
        Ok(if self.in_out {
            self.weight.dim(1)?
        } else {
            self.weight.dim(0)?
        })
    }

    /// Applies the layer to `x` `[..., in]`.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let d_in = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / d_in.max(1);
        let x2 = x.reshape((rows, d_in))?;
        let y = if self.in_out {
            x2.matmul(&self.weight)?
        } else {
            x2.matmul(&self.weight.t()?)?
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        if let Some(last) = out_dims.last_mut() {
            *last = self.out_dim()?;
        }
        Ok(y.reshape(out_dims)?)
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
