//! Numerical building blocks shared by the models.
//!
//! candle's fused kernels (layer norm, RMS norm, softmax, rope) have no backward pass; the
//! functions here use them when no input is tracked by autograd and fall back to the
//! differentiable compositions otherwise, so a model built on a `VarMap` (or an intervention
//! trained through a frozen model) gets correct gradients.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::Module;

use crate::Result;

fn tracked(xs: &[&Tensor]) -> bool {
    xs.iter().any(|x| x.track_op())
}

/// Layer norm over the last dimension (HF semantics: biased variance, eps inside the root).
pub(crate) fn layer_norm(x: &Tensor, ln: &candle_nn::LayerNorm) -> Result<Tensor> {
    match ln.bias() {
        Some(b) if tracked(&[x, ln.weight(), b]) => Ok(candle_nn::ops::layer_norm_slow(
            x,
            ln.weight(),
            b,
            ln.eps() as f32,
        )?),
        _ => Ok(ln.forward(&x.contiguous()?)?),
    }
}

/// RMS norm over the last dimension (HF semantics: computed in f32, cast back, then scaled).
pub(crate) fn rms_norm(x: &Tensor, norm: &candle_nn::RmsNorm) -> Result<Tensor> {
    if tracked(&[x, norm.weight()]) {
        Ok(norm.forward_diff(x)?)
    } else {
        Ok(norm.forward(&x.contiguous()?)?)
    }
}

/// Softmax over the last dimension.
pub(crate) fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if tracked(&[x]) {
        Ok(candle_nn::ops::softmax(x, D::Minus1)?)
    } else {
        Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?)
    }
}

/// `x @ w + b` for a weight stored `[in, out]` (GPT-2's Conv1D), `x` of shape `[B, T, in]`.
pub(crate) fn conv1d_linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    let (bsz, t, d_in) = x.dims3()?;
    let y = x.reshape((bsz * t, d_in))?.matmul(w)?.broadcast_add(b)?;
    Ok(y.reshape((bsz, t, ()))?)
}

fn rotate_half(x: &Tensor) -> Result<Tensor> {
    let d = x.dim(D::Minus1)?;
    let x1 = x.narrow(D::Minus1, 0, d / 2)?;
    let x2 = x.narrow(D::Minus1, d / 2, d - d / 2)?;
    Ok(Tensor::cat(&[&x2.neg()?, &x1], D::Minus1)?)
}

/// Rotary embedding (HF `rotate_half` layout) of `x` `[B, H, T, hd]` with `cos`/`sin`
/// `[B, T, hd/2]` (or `[T, hd/2]`) already in `x`'s dtype.
pub(crate) fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    if !tracked(&[x, cos, sin]) {
        return Ok(candle_nn::rotary_emb::rope(&x.contiguous()?, cos, sin)?);
    }
    let (cos, sin) = if cos.rank() == 2 {
        (cos.unsqueeze(0)?, sin.unsqueeze(0)?)
    } else {
        (cos.clone(), sin.clone())
    };
    // [B, 1, T, hd]
    let cos = Tensor::cat(&[&cos, &cos], D::Minus1)?.unsqueeze(1)?;
    let sin = Tensor::cat(&[&sin, &sin], D::Minus1)?.unsqueeze(1)?;
    Ok((x.broadcast_mul(&cos)? + rotate_half(x)?.broadcast_mul(&sin)?)?)
}

/// Position ids and attention mask for one forward pass.
#[derive(Debug, Clone)]
pub(crate) struct Positions {
    /// `[B, T]` u32 position of each new token.
    pub ids: Tensor,
    /// `true` when every row has the same positions (`offset..offset+T`): lets models use
    /// `[T, ..]` tables instead of per-row ones.
    pub shared: bool,
    /// `[B or 1, 1, T, T_total]` u8: 1 where the query may attend the key.
    pub allowed: Option<Tensor>,
}

/// Builds position ids (`cumsum(mask) - 1` clamped at 0 with a mask, `offset + t` without)
/// and the causal + padding mask for `t_new` new tokens after `offset` cached ones.
pub(crate) fn positions(
    batch: usize,
    t_new: usize,
    offset: usize,
    mask: Option<&Tensor>,
    device: &Device,
) -> Result<Positions> {
    let t_total = offset + t_new;
    let causal = if t_new > 1 {
        let v: Vec<u8> = (0..t_new)
            .flat_map(|i| (0..t_total).map(move |j| u8::from(j <= offset + i)))
            .collect();
        Some(Tensor::from_vec(v, (1, 1, t_new, t_total), device)?)
    } else {
        None
    };
    match mask {
        None => {
            let ids = Tensor::arange(offset as u32, t_total as u32, device)?
                .unsqueeze(0)?
                .broadcast_as((batch, t_new))?
                .contiguous()?;
            Ok(Positions {
                ids,
                shared: true,
                allowed: causal,
            })
        }
        Some(mask) => {
            let dims = mask.dims();
            if dims != [batch, t_total] {
                return Err(crate::ModelError::InvalidInput(format!(
                    "attention mask: expected shape [{batch}, {t_total}] (batch, cached + new tokens), got {dims:?}"
                )));
            }
            let m = mask.ne(0f64)?; // u8 [B, T_total]
            let mf = m.to_dtype(DType::F32)?;
            let ids = (mf.cumsum(1)? - 1.0)?
                .clamp(0f32, f32::MAX)?
                .narrow(1, offset, t_new)?
                .to_dtype(DType::U32)?
                .contiguous()?;
            let pad = m.reshape((batch, 1, 1, t_total))?;
            let allowed = match causal {
                Some(c) => c.broadcast_mul(&pad)?,
                None => pad,
            };
            Ok(Positions {
                ids,
                shared: false,
                allowed: Some(allowed),
            })
        }
    }
}

/// Sets the scores of disallowed (query, key) pairs to the dtype's lowest finite value
/// (as HF does), so a fully masked row stays finite.
pub(crate) fn mask_scores(scores: &Tensor, allowed: Option<&Tensor>) -> Result<Tensor> {
    let Some(allowed) = allowed else {
        return Ok(scores.clone());
    };
    let shape = scores.shape();
    let min = match scores.dtype() {
        DType::F16 => f64::from(half_min_f16()),
        DType::BF16 => f64::from(half_min_bf16()),
        DType::F64 => f64::MIN,
        _ => f64::from(f32::MIN),
    };
    let fill = Tensor::new(min, scores.device())?
        .to_dtype(scores.dtype())?
        .broadcast_as(shape)?;
    Ok(allowed.broadcast_as(shape)?.where_cond(scores, &fill)?)
}

fn half_min_f16() -> f32 {
    -65504.0
}

fn half_min_bf16() -> f32 {
    // bf16::MIN = -(2 - 2^-7) * 2^127
    -3.389_531_4e38
}
