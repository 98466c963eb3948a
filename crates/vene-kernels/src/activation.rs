//! Element-wise activations: GELU (tanh approximation and exact), SiLU.
//!
//! The CPU fast path evaluates them with the vectorised math of [`crate::vmath`] (one `exp`
//! per element, no libm call) on several threads; elsewhere candle's own ops run.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};

use crate::error::Result;
use crate::fast::{f32_slice, fast_path, map_rows};
use crate::vmath::{self, multiversion};

/// Which activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    GeluTanh,
    GeluErf,
    Silu,
}

multiversion! {
    fn gelu_tanh_block(src: &[f32], dst: &mut [MaybeUninit<f32>]) {
        // An explicit loop (not a function item passed along), so the math is inlined into
        // the vectorised loop.
        for (d, &x) in dst.iter_mut().zip(src) {
            d.write(vmath::gelu_tanh(x));
        }
    }
}

multiversion! {
    fn gelu_erf_block(src: &[f32], dst: &mut [MaybeUninit<f32>]) {
        // An explicit loop (not a function item passed along), so the math is inlined into
        // the vectorised loop.
        for (d, &x) in dst.iter_mut().zip(src) {
            d.write(vmath::gelu_erf(x));
        }
    }
}

multiversion! {
    fn silu_block(src: &[f32], dst: &mut [MaybeUninit<f32>]) {
        // An explicit loop (not a function item passed along), so the math is inlined into
        // the vectorised loop.
        for (d, &x) in dst.iter_mut().zip(src) {
            d.write(vmath::silu(x));
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct ActivationOp(Kind);

impl CustomOp1 for ActivationOp {
    fn name(&self) -> &'static str {
        match self.0 {
            Kind::GeluTanh => "vene-gelu-tanh",
            Kind::GeluErf => "vene-gelu-erf",
            Kind::Silu => "vene-silu",
        }
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = f32_slice(s, l, self.name())?;
        let out = match self.0 {
            Kind::GeluTanh => map_rows(src, 1, gelu_tanh_block),
            Kind::GeluErf => map_rows(src, 1, gelu_erf_block),
            Kind::Silu => map_rows(src, 1, silu_block),
        };
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
}

fn apply(x: &Tensor, kind: Kind) -> Result<Tensor> {
    if fast_path(&[x]) {
        return Ok(x.apply_op1_no_bwd(&ActivationOp(kind))?);
    }
    Ok(match kind {
        Kind::GeluTanh => x.gelu()?,
        Kind::GeluErf => x.gelu_erf()?,
        Kind::Silu => x.silu()?,
    })
}

/// GELU, tanh approximation (HF `gelu_new` / `gelu_pytorch_tanh`, candle's `gelu`):
/// `x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2`, any shape.
///
/// On the CPU with an f32, contiguous tensor not tracked by autograd (and kernels not forced
/// off, see [`crate::set_kernel_mode`]) it runs a vectorised, multi-threaded kernel, within
/// 1e-6 (relative for `|x| > 1`) of the f64 value; `gelu_tanh(-inf) = -0` where candle gives
/// NaN. Every other case runs [`Tensor::gelu`].
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[-1f32, 0., 1., 3.], &Device::Cpu)?;
/// let y = vene_kernels::gelu_tanh(&x)?.to_vec1::<f32>()?;
/// // 0.5 * 1 * (1 + tanh(0.7978846 * 1.044715)) = 0.8411920
/// assert!((y[2] - 0.841_192).abs() < 1e-6 && (y[0] + 0.158_808).abs() < 1e-6);
/// assert_eq!(y[1], 0.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    apply(x, Kind::GeluTanh)
}

/// Exact GELU `x Phi(x) = x (1 + erf(x / sqrt 2)) / 2` (HF `gelu`, candle's `gelu_erf`), any
/// shape. Fast path as for [`gelu_tanh`] (the normal CDF through an `erfc` accurate in the
/// lower tail); `gelu_erf(-inf) = -0`. Elsewhere [`Tensor::gelu_erf`].
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[-1f32, 0., 1.], &Device::Cpu)?;
/// let y = vene_kernels::gelu_erf(&x)?.to_vec1::<f32>()?;
/// // Phi(1) = 0.8413447
/// assert!((y[2] - 0.841_344_7).abs() < 1e-6 && (y[0] + 0.158_655_3).abs() < 1e-6);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    apply(x, Kind::GeluErf)
}

/// SiLU `x / (1 + e^-x)`, any shape. Fast path as for [`gelu_tanh`]; `silu(-inf) = -0`.
/// Elsewhere [`Tensor::silu`].
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[0f32, 2.], &Device::Cpu)?;
/// let y = vene_kernels::silu(&x)?.to_vec1::<f32>()?;
/// assert!((y[1] - 2. / (1. + (-2f32).exp())).abs() < 1e-6 && y[0] == 0.);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn silu(x: &Tensor) -> Result<Tensor> {
    apply(x, Kind::Silu)
}
