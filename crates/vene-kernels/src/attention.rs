//! Scaled dot-product attention with an optional u8 mask and soft-cap: fused on the CPU, the
//! candle composition elsewhere.

use std::sync::Arc;

use candle_core::{DType, Tensor, D};

use crate::attention_cpu::{AttentionOp, Dims, Mask, ProbsOp, ScoreParams, ValuesOp};
use crate::error::{KernelError, Result};
use crate::fast::fast_path;

const OP: &str = "attention";

/// How scores are formed from `q k^T` before the softmax (see [`attention`]).
#[derive(Debug, Clone, Copy)]
pub struct AttentionParams<'a> {
    /// Factor of `q k^T` (typically `1 / sqrt(head_dim)`).
    pub scale: f64,
    /// Soft-cap `c`: scores become `c tanh(s / c)` (Gemma 2); `None` for none.
    pub softcap: Option<f64>,
    /// u8 `[B or 1, H or 1, T or 1, T_total]`, nonzero where a query may attend a key;
    /// `None` lets every query attend every key.
    pub mask: Option<&'a Tensor>,
}

impl Default for AttentionParams<'_> {
    /// Scale 1, no soft-cap, no mask.
    fn default() -> Self {
        Self {
            scale: 1.0,
            softcap: None,
            mask: None,
        }
    }
}

fn bad(detail: String) -> KernelError {
    KernelError::BadShape { op: OP, detail }
}

/// `[B, H, T, hd]` of a rank-4 tensor, else an error naming `what`.
fn dims4(x: &Tensor, what: &str) -> Result<[usize; 4]> {
    match *x.dims() {
        [a, b, c, d] => Ok([a, b, c, d]),
        _ => Err(bad(format!(
            "{what} must be [B, H, T, head_dim], got {:?}",
            x.dims()
        ))),
    }
}

fn same_device(xs: &[&Tensor]) -> Result<()> {
    if xs
        .windows(2)
        .all(|w| w[0].device().same_device(w[1].device()))
    {
        Ok(())
    } else {
        Err(KernelError::DevicesDiffer { op: OP })
    }
}

/// Validates q, k (and the mask) and returns the sizes (with `dv` = `d`, set by the caller).
fn check_qk(q: &Tensor, k: &Tensor, mask: Option<&Tensor>) -> Result<Dims> {
    let [b, h, t, d] = dims4(q, "q")?;
    let [kb, kh, tk, kd] = dims4(k, "k")?;
    if (kb, kh, kd) != (b, h, d) {
        return Err(bad(format!(
            "k {:?} must be [{b}, {h}, T_total, {d}] to match q {:?} (repeat kv heads first)",
            k.dims(),
            q.dims()
        )));
    }
    if let Some(m) = mask {
        same_device(&[q, m])?;
        if m.dtype() != DType::U8 {
            return Err(KernelError::WrongDType {
                op: OP,
                what: "mask",
                expected: DType::U8,
                got: m.dtype(),
            });
        }
        let ok = matches!(*m.dims(), [mb, mh, mt, mk]
            if (mb == 1 || mb == b) && (mh == 1 || mh == h) && (mt == 1 || mt == t) && mk == tk);
        if !ok {
            return Err(bad(format!(
                "mask must be [{b} or 1, {h} or 1, {t} or 1, {tk}], got {:?}",
                m.dims()
            )));
        }
    }
    same_device(&[q, k])?;
    Ok(Dims {
        b,
        h,
        t,
        tk,
        d,
        dv: d,
    })
}

/// Validates probs `[B, H, T, T_total]` against v `[B, H, T_total, dv]`.
fn check_pv(probs: &Tensor, v: &Tensor) -> Result<Dims> {
    let [b, h, t, tk] = dims4(probs, "probs")?;
    let [vb, vh, vt, dv] = dims4(v, "v")?;
    if (vb, vh, vt) != (b, h, tk) {
        return Err(bad(format!(
            "v {:?} must be [{b}, {h}, {tk}, head_dim] to match the probabilities {:?}",
            v.dims(),
            probs.dims()
        )));
    }
    same_device(&[probs, v])?;
    Ok(Dims {
        b,
        h,
        t,
        tk,
        d: 0,
        dv,
    })
}

/// The fused path applies: kernels on, CPU, f32, contiguous, untracked, no empty dimension.
fn fused(xs: &[&Tensor], dims: Dims) -> bool {
    let Dims { b, h, t, tk, .. } = dims;
    b * h * t * tk > 0 && fast_path(xs)
}

/// The mask of the fused kernels (its bytes, `[mb, mh, t, tk]`).
fn mask_rows(mask: Option<&Tensor>) -> Result<Option<Arc<Mask>>> {
    let Some(m) = mask else { return Ok(None) };
    let (mb, mh, mt) = (m.dim(0)?, m.dim(1)?, m.dim(2)?);
    let data = m.flatten_all()?.to_vec1::<u8>()?;
    Ok(Some(Arc::new(Mask { data, mb, mh, mt })))
}

fn score_params(p: &AttentionParams<'_>) -> Result<ScoreParams> {
    Ok(ScoreParams {
        scale: p.scale as f32,
        softcap: p.softcap.map(|c| c as f32),
        mask: mask_rows(p.mask)?,
    })
}

/// The lowest finite value of a float dtype, what masked scores are set to.
fn lowest(dtype: DType) -> f64 {
    match dtype {
        DType::F16 => -65504.0,
        DType::BF16 => -3.389_531_4e38,
        DType::F64 => f64::MIN,
        _ => f64::from(f32::MIN),
    }
}

/// The candle composition of [`attention_probs`].
fn probs_composed(q: &Tensor, k: &Tensor, p: &AttentionParams<'_>) -> Result<Tensor> {
    let mut s = q.matmul(&k.t()?)?;
    if p.scale != 1.0 {
        s = (s * p.scale)?;
    }
    if let Some(cap) = p.softcap {
        s = ((s / cap)?.tanh()? * cap)?;
    }
    if let Some(m) = p.mask {
        let fill = Tensor::new(lowest(s.dtype()), s.device())?
            .to_dtype(s.dtype())?
            .broadcast_as(s.shape())?;
        s = m.broadcast_as(s.shape())?.where_cond(&s, &fill)?;
    }
    if s.track_op() {
        Ok(candle_nn::ops::softmax(&s, D::Minus1)?)
    } else {
        Ok(candle_nn::ops::softmax_last_dim(&s)?)
    }
}

/// The candle composition of [`attention_values`].
fn values_composed(probs: &Tensor, v: &Tensor, dims: Dims) -> Result<Tensor> {
    let Dims { b, h, t, dv, .. } = dims;
    Ok(probs.matmul(v)?.transpose(1, 2)?.reshape((b, t, h * dv))?)
}

/// Attention probabilities `softmax(mask(softcap(scale * q k^T)))` over the keys:
/// `[B, H, T, T_total]` from q `[B, H, T, hd]` and k `[B, H, T_total, hd]` (kv heads already
/// repeated for grouped-query attention). Masked scores are set to the dtype's lowest finite
/// value (as HF does), so a query that may attend nothing gets a uniform row, not NaN.
///
/// On the CPU with f32, contiguous tensors not tracked by autograd (kernels not forced off),
/// one parallel loop over (batch, head) blocks: a single-threaded gemm for the scores with the
/// scale folded in, then soft-cap, mask and a vectorised softmax while the block is in cache.
/// Otherwise candle's ops (`matmul`, `tanh`, `where_cond`, softmax) in the dtype of q.
/// Use this and [`attention_values`] when the probabilities are needed (e.g. hooked);
/// [`attention`] does both without handing them out.
///
/// # Errors
/// [`KernelError::BadShape`] for shapes that do not fit, [`KernelError::WrongDType`] for a
/// mask that is not u8, [`KernelError::DevicesDiffer`].
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_kernels::{attention_probs, AttentionParams};
/// let dev = Device::Cpu;
/// let q = Tensor::new(&[1f32, 0.], &dev)?.reshape((1, 1, 1, 2))?;
/// let k = Tensor::new(&[[0f32, 0.], [2f32.ln(), 0.]], &dev)?.reshape((1, 1, 2, 2))?;
/// // Scores [0, ln 2]: probabilities [1/3, 2/3].
/// let p = attention_probs(&q, &k, &AttentionParams::default())?.flatten_all()?.to_vec1::<f32>()?;
/// assert!((p[0] - 1. / 3.).abs() < 1e-6 && (p[1] - 2. / 3.).abs() < 1e-6);
/// // Masking the second key leaves all the weight on the first.
/// let mask = Tensor::new(&[1u8, 0], &dev)?.reshape((1, 1, 1, 2))?;
/// let params = AttentionParams { mask: Some(&mask), ..Default::default() };
/// let p = attention_probs(&q, &k, &params)?.flatten_all()?.to_vec1::<f32>()?;
/// assert_eq!(p, [1., 0.]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn attention_probs(q: &Tensor, k: &Tensor, params: &AttentionParams<'_>) -> Result<Tensor> {
    let dims = check_qk(q, k, params.mask)?;
    if fused(&[q, k], dims) {
        let op = ProbsOp {
            dims,
            scores: score_params(params)?,
        };
        return Ok(q.apply_op2_no_bwd(k, &op)?);
    }
    probs_composed(q, k, params)
}

/// `probs @ v` with the heads merged: `[B, T, H * dv]` (the input of the output projection)
/// from probs `[B, H, T, T_total]` and v `[B, H, T_total, dv]`.
///
/// CPU fast path as for [`attention_probs`] (one single-threaded gemm per (batch, head),
/// written straight into the merged layout); otherwise `matmul`, `transpose` and `reshape`.
///
/// # Errors
/// [`KernelError::BadShape`], [`KernelError::DevicesDiffer`].
///
/// ```
/// use candle_core::{Device, Tensor};
/// let dev = Device::Cpu;
/// // Two heads, one query, two keys; values of width 1.
/// let p = Tensor::new(&[0.25f32, 0.75, 1., 0.], &dev)?.reshape((1, 2, 1, 2))?;
/// let v = Tensor::new(&[4f32, 8., 1., 2.], &dev)?.reshape((1, 2, 2, 1))?;
/// let out = vene_kernels::attention_values(&p, &v)?;
/// assert_eq!(out.to_vec3::<f32>()?, [[[7., 1.]]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn attention_values(probs: &Tensor, v: &Tensor) -> Result<Tensor> {
    let dims = check_pv(probs, v)?;
    if fused(&[probs, v], dims) && dims.dv > 0 {
        return Ok(probs.apply_op2_no_bwd(v, &ValuesOp { dims })?);
    }
    values_composed(probs, v, dims)
}

/// Attention `softmax(mask(softcap(scale * q k^T))) v` with the heads merged: `[B, T, H * dv]`
/// from q `[B, H, T, hd]`, k `[B, H, T_total, hd]`, v `[B, H, T_total, dv]`; the same values
/// as [`attention_probs`] followed by [`attention_values`].
///
/// On the CPU fast path each (batch, head) block goes from q to its output rows in one go,
/// its scores never leaving the cache. Otherwise the candle composition.
///
/// # Errors
/// As [`attention_probs`] and [`attention_values`].
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_kernels::{attention, AttentionParams};
/// let dev = Device::Cpu;
/// let q = Tensor::new(&[1f32, 0.], &dev)?.reshape((1, 1, 1, 2))?;
/// let k = Tensor::new(&[[0f32, 0.], [2f32.ln(), 0.]], &dev)?.reshape((1, 1, 2, 2))?;
/// let v = Tensor::new(&[[3f32], [6.]], &dev)?.reshape((1, 1, 2, 1))?;
/// // 3/3 + 6 * 2/3 = 5
/// let out = attention(&q, &k, &v, &AttentionParams::default())?.flatten_all()?.to_vec1::<f32>()?;
/// assert!((out[0] - 5.).abs() < 1e-5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    params: &AttentionParams<'_>,
) -> Result<Tensor> {
    let mut dims = check_qk(q, k, params.mask)?;
    let [vb, vh, vt, dv] = dims4(v, "v")?;
    if (vb, vh, vt) != (dims.b, dims.h, dims.tk) {
        return Err(bad(format!(
            "v {:?} must be [{}, {}, {}, head_dim] to match k {:?}",
            v.dims(),
            dims.b,
            dims.h,
            dims.tk,
            k.dims()
        )));
    }
    same_device(&[q, v])?;
    dims.dv = dv;
    if fused(&[q, k, v], dims) && dv > 0 {
        let op = AttentionOp {
            dims,
            scores: score_params(params)?,
        };
        return Ok(q.apply_op3_no_bwd(k, v, &op)?);
    }
    let probs = probs_composed(q, k, params)?;
    values_composed(&probs, v, dims)
}
