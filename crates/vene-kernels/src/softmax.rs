//! Softmax over the last dimension.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, D};

use crate::error::{KernelError, Result};
use crate::fast::{f32_slice, fast_path, map_rows, whole_rows};
use crate::vmath::{self, multiversion, LANES};

/// `row = softmax(row)` in place: `e^(x - max) / sum`, the exponentials in [`LANES`] lanes.
///
/// As candle's kernel, the maximum skips NaN and a row whose maximum is `+-inf` becomes NaN
/// (`inf - inf`), so a row of only `-inf` (every key masked with `-inf`) gives NaN, not zeros.
#[inline(always)]
pub(crate) fn softmax_inplace(row: &mut [f32]) {
    let m = vmath::max(row);
    let mut acc = [0f32; LANES];
    let mut chunks = row.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, x) in acc.iter_mut().zip(c.iter_mut()) {
            let e = vmath::exp(*x - m);
            *x = e;
            *a += e;
        }
    }
    let mut sum = 0f32;
    for x in chunks.into_remainder() {
        let e = vmath::exp(*x - m);
        *x = e;
        sum += e;
    }
    let inv = 1.0 / (sum + acc.iter().sum::<f32>());
    for x in row.iter_mut() {
        *x *= inv;
    }
}

multiversion! {
    fn softmax_block(src: &[f32], dst: &mut [MaybeUninit<f32>], width: usize) {
        for (s, d) in src.chunks_exact(width).zip(dst.chunks_exact_mut(width)) {
            for (o, &x) in d.iter_mut().zip(s) {
                o.write(x);
            }
            // SAFETY: every element of `d` was written just above; `MaybeUninit<f32>` has the
            // layout of `f32`.
            let d = unsafe { &mut *(d as *mut [MaybeUninit<f32>] as *mut [f32]) };
            softmax_inplace(d);
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "vene-softmax-last-dim"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = f32_slice(s, l, self.name())?;
        let width = l.dims().last().copied().unwrap_or(1);
        whole_rows(src.len(), width, self.name())?;
        let out = map_rows(src, width, |s, d| softmax_block(s, d, width));
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

/// Softmax over the last dimension of `x` (at least 1-D).
///
/// CPU fast path (f32, contiguous, not tracked by autograd, kernels not forced off): one pass
/// per row with a vectorised `exp`, rows over several threads. Else candle's
/// `softmax_last_dim` (or the differentiable `softmax` when `x` is tracked). Both give NaN
/// for a row whose maximum is infinite (e.g. all `-inf`); mask with a finite minimum (as
/// [`crate::attention`] does) to get a uniform row instead.
///
/// # Errors
/// [`KernelError::BadShape`] for a scalar.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[0f32, 0.], [0., 2f32.ln()]], &Device::Cpu)?;
/// let p = vene_kernels::softmax_last_dim(&x)?.to_vec2::<f32>()?;
/// assert_eq!(p[0], [0.5, 0.5]);
/// assert!((p[1][1] - 2. / 3.).abs() < 1e-7);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.rank() == 0 {
        return Err(KernelError::BadShape {
            op: "softmax_last_dim",
            detail: "input must have at least one dimension, got a scalar".into(),
        });
    }
    if fast_path(&[x]) {
        return Ok(x.apply_op1_no_bwd(&SoftmaxOp)?);
    }
    if x.track_op() {
        Ok(candle_nn::ops::softmax(x, D::Minus1)?)
    } else {
        Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?)
    }
}
