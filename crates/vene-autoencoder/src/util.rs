//! Small shared helpers: width and index checks, matmul over the last dimension.

use candle_core::{DType, Device, Tensor};

use crate::{AutoencoderError, Result};

/// Checks that the last dimension of `x` is `expected`.
pub(crate) fn check_width(x: &Tensor, expected: usize, what: &'static str) -> Result<()> {
    match x.dims().last() {
        Some(&w) if w == expected => Ok(()),
        _ => Err(AutoencoderError::WidthMismatch {
            what,
            expected,
            got: x.dims().to_vec(),
        }),
    }
}

/// Checks every index against `latent_dim` and returns them as a `u32` index tensor.
pub(crate) fn dims_index(dims: &[usize], latent_dim: usize, device: &Device) -> Result<Tensor> {
    let mut idx = Vec::with_capacity(dims.len());
    for &d in dims {
        if d >= latent_dim {
            return Err(AutoencoderError::LatentOutOfRange {
                index: d,
                latent_dim,
            });
        }
        // latent_dim fits in u32 for any tensor candle can index.
        idx.push(
            u32::try_from(d).map_err(|_| AutoencoderError::LatentOutOfRange {
                index: d,
                latent_dim,
            })?,
        );
    }
    Ok(Tensor::from_vec(idx, dims.len(), device)?)
}

/// How a weight matrix is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Orient {
    /// `[out, in]`, torch `nn.Linear` layout: `y = x @ W^T`.
    OutIn,
    /// `[in, out]`: `y = x @ W`.
    InOut,
}

impl Orient {
    /// The name saved in an autoencoder's settings: `"out_in"` or `"in_out"`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Orient::OutIn => "out_in",
            Orient::InOut => "in_out",
        }
    }

    /// The orientation named `name` (see [`Orient::name`]).
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        match name {
            "out_in" => Some(Orient::OutIn),
            "in_out" => Some(Orient::InOut),
            _ => None,
        }
    }
}

/// `x @ W` (or `x @ W^T`) over the last dimension of `x`, any leading shape.
pub(crate) fn matmul_last(x: &Tensor, w: &Tensor, orient: Orient) -> Result<Tensor> {
    let dims = x.dims();
    let inner = *dims
        .last()
        .ok_or_else(|| AutoencoderError::InvalidArgument("cannot multiply a 0-d tensor".into()))?;
    let rows = x.elem_count() / inner.max(1);
    let x2 = x.reshape((rows, inner))?;
    let y = match orient {
        Orient::OutIn => x2.matmul(&w.t()?)?,
        Orient::InOut => x2.matmul(w)?,
    };
    let out = y.dim(1)?;
    let mut shape = dims[..dims.len() - 1].to_vec();
    shape.push(out);
    Ok(y.reshape(shape)?)
}

/// Casts `x` to `dtype` when it differs.
pub(crate) fn to_dtype(x: &Tensor, dtype: DType) -> Result<Tensor> {
    if x.dtype() == dtype {
        Ok(x.clone())
    } else {
        Ok(x.to_dtype(dtype)?)
    }
}

/// Whether every element of `t` is finite (`x - x` is 0 for finite `x`, NaN otherwise).
pub(crate) fn all_finite(t: &Tensor) -> Result<bool> {
    if !t.dtype().is_float() || t.elem_count() == 0 {
        return Ok(true);
    }
    let s = t
        .sub(t)?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?;
    Ok(s == 0.0)
}
