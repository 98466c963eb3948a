//! Position ids and attention masks of one forward pass (causal, padding, sliding window).

use candle_core::{DType, Device, Tensor};

use crate::{ModelError, Result};

/// Position ids and the masks the layers attend with.
#[derive(Debug, Clone)]
pub(crate) struct Positions {
    /// `[B, T]` u32 position of each new token.
    pub ids: Tensor,
    /// Every row has the positions `offset..offset+T`: models may use `[T, ..]` tables.
    pub shared: bool,
    /// `[B or 1, 1, T, T_total]` u8, 1 where a query may attend a key (causal and padding);
    /// `None` when every key is allowed.
    full: Option<Tensor>,
    /// The same with a sliding window of `.0` keys.
    sliding: Option<(usize, Option<Tensor>)>,
}

impl Positions {
    /// The mask of a layer with sliding window `window` (`None`: full causal attention).
    pub(crate) fn mask(&self, window: Option<usize>) -> Option<&Tensor> {
        match (window, &self.sliding) {
            (Some(w), Some((sw, m))) if w == *sw => m.as_ref(),
            _ => self.full.as_ref(),
        }
    }
}

/// What a pass is given: `t_new` new tokens after `offset` cached ones, an optional 0/1
/// `mask` `[B, offset + t_new]`, optional explicit `position_ids` `[B, t_new]`, and the
/// sliding window the model's layers use (at most one size).
pub(crate) struct PositionRequest<'a> {
    pub batch: usize,
    pub t_new: usize,
    pub offset: usize,
    pub mask: Option<&'a Tensor>,
    pub position_ids: Option<&'a Tensor>,
    pub window: Option<usize>,
}

/// `[1, 1, T, T_total]` u8: query `offset + i` may see key `j` when `j <= offset + i` (and
/// `offset + i - j < window`); `None` when nothing is masked.
fn causal(
    t_new: usize,
    offset: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Option<Tensor>> {
    let t_total = offset + t_new;
    let allowed = |i: usize, j: usize| {
        let q = offset + i;
        j <= q && window.is_none_or(|w| q - j < w)
    };
    let any_masked = (0..t_new).any(|i| (0..t_total).any(|j| !allowed(i, j)));
    if !any_masked {
        return Ok(None);
    }
    let v: Vec<u8> = (0..t_new)
        .flat_map(|i| (0..t_total).map(move |j| u8::from(allowed(i, j))))
        .collect();
    Ok(Some(Tensor::from_vec(v, (1, 1, t_new, t_total), device)?))
}

/// Builds position ids (explicit, else `cumsum(mask) - 1` clamped at 0 with a mask, else
/// `offset + t`) and the masks.
pub(crate) fn positions(req: &PositionRequest<'_>, device: &Device) -> Result<Positions> {
    let PositionRequest {
        batch,
        t_new,
        offset,
        ..
    } = *req;
    let t_total = offset + t_new;
    let pad = match req.mask {
        None => None,
        Some(mask) => {
            let dims = mask.dims();
            if dims != [batch, t_total] {
                return Err(ModelError::InvalidInput(format!(
                    "attention mask: expected shape [{batch}, {t_total}] (batch, cached + new tokens), got {dims:?}"
                )));
            }
            Some(mask.to_device(device)?.ne(0f64)?)
        }
    };
    let (ids, shared) = match (req.position_ids, &pad) {
        (Some(p), _) => {
            if p.dims() != [batch, t_new] {
                return Err(ModelError::InvalidInput(format!(
                    "position ids: expected shape [{batch}, {t_new}] (batch, new tokens), got {:?}",
                    p.dims()
                )));
            }
            let p = match p.dtype() {
                DType::U32 | DType::U8 | DType::I64 => p.to_dtype(DType::I64)?,
                other => {
                    return Err(ModelError::InvalidInput(format!(
                        "position ids: expected an integer dtype, got {other:?}"
                    )))
                }
            };
            if p.flatten_all()?.min(0)?.to_scalar::<i64>()? < 0 {
                return Err(ModelError::InvalidInput(
                    "position ids must not be negative".to_string(),
                ));
            }
            (p.to_dtype(DType::U32)?.to_device(device)?, false)
        }
        (None, None) => (
            Tensor::arange(offset as u32, t_total as u32, device)?
                .unsqueeze(0)?
                .broadcast_as((batch, t_new))?
                .contiguous()?,
            true,
        ),
        (None, Some(m)) => {
            let mf = m.to_dtype(DType::F32)?;
            let ids = (mf.cumsum(1)? - 1.0)?
                .clamp(0f32, f32::MAX)?
                .narrow(1, offset, t_new)?
                .to_dtype(DType::U32)?
                .contiguous()?;
            (ids, false)
        }
    };
    let combine = |c: Option<Tensor>| -> Result<Option<Tensor>> {
        Ok(match (&pad, c) {
            (None, c) => c,
            (Some(p), None) => Some(p.reshape((batch, 1, 1, t_total))?),
            (Some(p), Some(c)) => Some(c.broadcast_mul(&p.reshape((batch, 1, 1, t_total))?)?),
        })
    };
    let full = combine(causal(t_new, offset, None, device)?)?;
    let sliding = match req.window {
        Some(w) => Some((w, combine(causal(t_new, offset, Some(w), device)?)?)),
        None => None,
    };
    Ok(Positions {
        ids,
        shared,
        full,
        sliding,
    })
}

/// Sets the scores of disallowed (query, key) pairs to the dtype's lowest finite value
/// (as HF does), so a fully masked row stays finite.
pub(crate) fn mask_scores(scores: &Tensor, allowed: Option<&Tensor>) -> Result<Tensor> {
    let Some(allowed) = allowed else {
        return Ok(scores.clone());
    };
    let shape = scores.shape();
    let min = match scores.dtype() {
        DType::F16 => -65504.0,
        DType::BF16 => -3.389_531_4e38,
        DType::F64 => f64::MIN,
        _ => f64::from(f32::MIN),
    };
    let fill = Tensor::new(min, scores.device())?
        .to_dtype(scores.dtype())?
        .broadcast_as(shape)?;
    Ok(allowed.broadcast_as(shape)?.where_cond(scores, &fill)?)
}
