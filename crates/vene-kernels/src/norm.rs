//! Layer norm and RMS norm over the last dimension.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use crate::error::{KernelError, Result};
use crate::fast::{f32_slice, fast_path, map_rows, whole_rows};
use crate::vmath::{self, multiversion};

multiversion! {
    fn layer_norm_block(
        src: &[f32],
        dst: &mut [MaybeUninit<f32>],
        w: &[f32],
        b: &[f32],
        eps: f32,
    ) {
        let width = w.len();
        let n = width as f32;
        for (x, d) in src.chunks_exact(width).zip(dst.chunks_exact_mut(width)) {
            let mean = vmath::sum_map(x, |v| v) / n;
            let var = vmath::sum_map(x, |v| (v - mean) * (v - mean)) / n;
            let inv = 1.0 / (var + eps).sqrt();
            for (((o, &v), &wi), &bi) in d.iter_mut().zip(x).zip(w).zip(b) {
                o.write((v - mean) * inv * wi + bi);
            }
        }
    }
}

multiversion! {
    fn rms_norm_block(src: &[f32], dst: &mut [MaybeUninit<f32>], w: &[f32], eps: f32) {
        let width = w.len();
        let n = width as f32;
        for (x, d) in src.chunks_exact(width).zip(dst.chunks_exact_mut(width)) {
            let ms = vmath::sum_map(x, |v| v * v) / n;
            let inv = 1.0 / (ms + eps).sqrt();
            for ((o, &v), &wi) in d.iter_mut().zip(x).zip(w) {
                o.write(v * inv * wi);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct LayerNormOp {
    eps: f32,
}

impl CustomOp3 for LayerNormOp {
    fn name(&self) -> &'static str {
        "vene-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        let b = f32_slice(s3, l3, self.name())?;
        if b.len() != w.len() {
            candle_core::bail!("{}: internal size mismatch of weight and bias", self.name());
        }
        whole_rows(x.len(), w.len(), self.name())?;
        let eps = self.eps;
        let out = map_rows(x, w.len(), |s, d| layer_norm_block(s, d, w, b, eps));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

#[derive(Debug, Clone, Copy)]
struct RmsNormOp {
    eps: f32,
}

impl CustomOp2 for RmsNormOp {
    fn name(&self) -> &'static str {
        "vene-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        whole_rows(x.len(), w.len(), self.name())?;
        let eps = self.eps;
        let out = map_rows(x, w.len(), |s, d| rms_norm_block(s, d, w, eps));
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// Checks that `x` has a last dimension and each parameter is a vector of its size.
fn check(op: &'static str, x: &Tensor, params: &[(&str, &Tensor)]) -> Result<()> {
    let Some(&width) = x.dims().last() else {
        return Err(KernelError::BadShape {
            op,
            detail: "input must have at least one dimension, got a scalar".into(),
        });
    };
    for (name, p) in params {
        if p.dims() != [width] {
            return Err(KernelError::BadShape {
                op,
                detail: format!(
                    "{name} must be [{width}] (the last dimension of the input {:?}), got {:?}",
                    x.dims(),
                    p.dims()
                ),
            });
        }
    }
    Ok(())
}

/// Layer norm over the last dimension: `(x - mean) / sqrt(var + eps) * w + b`, the variance
/// biased (divided by the width), as PyTorch's `LayerNorm`.
///
/// CPU fast path (all f32, contiguous, none tracked by autograd, kernels not forced off): a
/// two-pass mean/variance per row in vectorised lanes, rows over several threads. Else
/// candle's `layer_norm` (or `layer_norm_slow` when something is tracked).
///
/// # Errors
/// [`KernelError::BadShape`] when `x` is a scalar or `w`, `b` are not vectors of the last
/// dimension of `x`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[1f32, 3.]], &Device::Cpu)?;
/// let w = Tensor::new(&[2f32, 2.], &Device::Cpu)?;
/// let b = Tensor::new(&[0f32, 1.], &Device::Cpu)?;
/// // mean 2, variance 1: [-1, 1] * 2 + [0, 1]
/// let y = vene_kernels::layer_norm(&x, &w, &b, 0.0)?.to_vec2::<f32>()?;
/// assert_eq!(y, [[-2., 3.]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    check("layer_norm", x, &[("weight", w), ("bias", b)])?;
    if fast_path(&[x, w, b]) {
        return Ok(x.apply_op3_no_bwd(w, b, &LayerNormOp { eps: eps as f32 })?);
    }
    if x.track_op() || w.track_op() || b.track_op() {
        Ok(candle_nn::ops::layer_norm_slow(x, w, b, eps as f32)?)
    } else {
        Ok(candle_nn::ops::layer_norm(
            &x.contiguous()?,
            w,
            b,
            eps as f32,
        )?)
    }
}

/// RMS norm over the last dimension: `x / sqrt(mean(x^2) + eps) * w`.
///
/// Fast path and fallbacks as for [`layer_norm`] (candle's `rms_norm` / `rms_norm_slow`).
///
/// # Errors
/// [`KernelError::BadShape`] when `x` is a scalar or `w` is not a vector of its last dimension.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[3f32, 4.]], &Device::Cpu)?;
/// let w = Tensor::new(&[1f32, 10.], &Device::Cpu)?;
/// // mean of squares 12.5
/// let y = vene_kernels::rms_norm(&x, &w, 0.0)?.to_vec2::<f32>()?;
/// let r = 12.5f32.sqrt();
/// assert!((y[0][0] - 3. / r).abs() < 1e-6 && (y[0][1] - 40. / r).abs() < 1e-5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    check("rms_norm", x, &[("weight", w)])?;
    if fast_path(&[x, w]) {
        return Ok(x.apply_op2_no_bwd(w, &RmsNormOp { eps: eps as f32 })?);
    }
    if x.track_op() || w.track_op() {
        Ok(candle_nn::ops::rms_norm_slow(x, w, eps as f32)?)
    } else {
        Ok(candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32)?)
    }
}
