//! Rotary position embedding: frequencies (plain, linear or llama3 scaling), the per-pass
//! `cos`/`sin` tables, and the rotation of the first `dims` dims of each head.

use std::f64::consts::PI;

use candle_core::{DType, Device, Tensor, D};

use super::spec::{RopeScaling, RotarySpec};
use crate::Result;

/// The frequencies of one model.
#[derive(Debug, Clone)]
pub(crate) struct Rotary {
    /// `[1, dims/2]` f32.
    inv_freq: Tensor,
    dims: usize,
}

/// `cos`, `sin` of one pass: `[T, dims/2]` (every row at the same positions) or
/// `[B, T, dims/2]`, in the activation dtype.
#[derive(Debug, Clone)]
pub(crate) struct RotaryTables {
    cos: Tensor,
    sin: Tensor,
    dims: usize,
}

/// HF's inverse frequencies for `spec` (computed in f64, stored as f32 as torch does in f32).
pub(crate) fn inv_freq(spec: &RotarySpec) -> Vec<f32> {
    let d = spec.dims as f64;
    // torch: 1 / base ** (arange(0, d, 2, dtype=int64).float() / d), in f32.
    let base: Vec<f32> = (0..spec.dims)
        .step_by(2)
        .map(|i| {
            let e = (i as f32) / (d as f32);
            1f32 / (spec.theta as f32).powf(e)
        })
        .collect();
    match spec.scaling {
        RopeScaling::None => base,
        RopeScaling::Linear { factor } => base.into_iter().map(|f| f / factor as f32).collect(),
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings: old,
        } => {
            let (factor, low, high, old) = (
                factor as f32,
                low_freq_factor as f32,
                high_freq_factor as f32,
                old as f32,
            );
            let low_wavelen = old / low;
            let high_wavelen = old / high;
            base.into_iter()
                .map(|f| {
                    let wavelen = 2.0 * PI as f32 / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / factor
                    } else {
                        let smooth = (old / wavelen - low) / (high - low);
                        (1.0 - smooth) * f / factor + smooth * f
                    }
                })
                .collect()
        }
    }
}

impl Rotary {
    pub(crate) fn new(spec: &RotarySpec, device: &Device) -> Result<Self> {
        let freqs = inv_freq(spec);
        let n = freqs.len();
        Ok(Self {
            inv_freq: Tensor::from_vec(freqs, (1, n), device)?,
            dims: spec.dims,
        })
    }

    /// The tables for position ids `ids` (`[B, T]` u32); `shared` when every row holds the
    /// same positions.
    pub(crate) fn tables(&self, ids: &Tensor, shared: bool, dtype: DType) -> Result<RotaryTables> {
        let ids = if shared { ids.get(0)? } else { ids.clone() };
        let freqs = ids
            .to_dtype(DType::F32)?
            .unsqueeze(D::Minus1)?
            .broadcast_mul(&self.inv_freq.to_device(ids.device())?)?;
        Ok(RotaryTables {
            cos: freqs.cos()?.to_dtype(dtype)?.contiguous()?,
            sin: freqs.sin()?.to_dtype(dtype)?.contiguous()?,
            dims: self.dims,
        })
    }

    /// The frequencies on `device` (they stay f32 whatever the model's dtype).
    pub(crate) fn to_device(&self, device: &Device) -> Result<Self> {
        Ok(Self {
            inv_freq: self.inv_freq.to_device(device)?,
            dims: self.dims,
        })
    }
}

impl RotaryTables {
    /// Rotates the first `dims` dims of each head of `x` `[B, H, T, head_dim]`.
    pub(crate) fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let hd = x.dim(D::Minus1)?;
        if self.dims == hd {
            return rope(x, &self.cos, &self.sin);
        }
        let rot = x.narrow(D::Minus1, 0, self.dims)?;
        let pass = x.narrow(D::Minus1, self.dims, hd - self.dims)?;
        let rot = rope(&rot, &self.cos, &self.sin)?;
        Ok(Tensor::cat(&[&rot, &pass], D::Minus1)?)
    }
}

fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d - d / 2)?;
    Ok(Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?)
}

/// `x * cos + rotate_half(x) * sin` with `cos`/`sin` `[T, d/2]` or `[B, T, d/2]`: candle's
/// fused kernel, or the differentiable composition when `x` is tracked by autograd.
fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !(x.track_op() || cos.track_op() || sin.track_op()) {
        return Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?);
    }
    let (cos, sin) = if cos.rank() == 2 {
        (cos.unsqueeze(0)?, sin.unsqueeze(0)?)
    } else {
        (cos.clone(), sin.clone())
    };
    let cos = Tensor::cat(&[&cos, &cos], D::Minus1)?.unsqueeze(1)?;
    let sin = Tensor::cat(&[&sin, &sin], D::Minus1)?.unsqueeze(1)?;
    Ok((x.broadcast_mul(&cos)? + rotate_half(x)?.broadcast_mul(&sin)?)?)
}
