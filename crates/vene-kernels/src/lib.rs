//! Fused kernels for vene: the masked latent swap as one candle custom op, and CPU fast paths
//! for the element-wise, norm, softmax, attention and linear work of a forward pass.
//!
//! **CPU fast paths.** [`gelu_tanh`], [`gelu_erf`], [`silu`], [`softmax_last_dim`],
//! [`layer_norm`], [`rms_norm`], [`attention`] (with [`attention_probs`] and
//! [`attention_values`] when the probabilities are wanted) and [`linear`] (bias fused into the
//! matmul) run vectorised, multi-threaded kernels for CPU, f32, contiguous tensors not tracked
//! by autograd, and candle's own ops for everything else (other dtypes and devices, autograd,
//! strided inputs) and whenever the kernels are forced off ([`set_kernel_mode`],
//! `VENE_KERNELS=fallback`). The vene-models decoder runs on them.
//!
//! **Masked swap.** The interchange in latent space is `out[.., i] = mask[i] ? source[.., i] : base[.., i]`.
//! [`masked_swap`] does it in one pass instead of a mask, a `where_cond` and temporaries
//! (see [`masked_swap_reference`] for that composition), on CPU (rayon over rows; a small
//! selection costs about one copy of base) and, with the crate feature `cuda`, with a CUDA
//! kernel. Devices without a fused kernel (Metal, CUDA without the feature) run the candle
//! composition instead, with the same values: the choice is made per call at run time
//! ([`kernel_path`]), and `VENE_KERNELS=fallback` or [`set_kernel_mode`] forces the
//! composition everywhere. [`Combine`] also covers pyvene's Addition / Subtraction on selected dims,
//! [`masked_combine_rows`] per-example selections, and [`masked_swap_inplace`] writes into
//! base's storage.
//!
//! Shapes: `base` is `[.., L]` (leading dims are flattened into rows); `source` has the
//! same shape or is a single row `[L]` (a constant vector broadcast to every row).
//! Dtypes: f32, f64, f16, bf16 (both inputs alike). Selections: indices `< L`, in any order,
//! no duplicates ([`KernelError::DuplicateIndex`]); an empty selection returns a copy of base.
//! Gradients (out-of-place ops): `d base = grad` off the selection (and on it for
//! Add/Subtract, 0 for Replace); `d source = ±grad` on the selection, 0 elsewhere
//! (summed over rows for a broadcast source).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! let base = Tensor::arange(0f32, 8., &Device::Cpu)?.reshape((2, 4))?;
//! let source = base.neg()?;
//! let out = vene_kernels::masked_swap(&base, &source, &[3, 1])?;
//! assert_eq!(out.to_vec2::<f32>()?, [[0., -1., 2., -3.], [4., -5., 6., -7.]]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

mod activation;
mod alloc;
mod api;
mod attention;
mod attention_cpu;
mod combine;
mod cpu;
#[cfg(feature = "cuda")]
mod cuda;
mod dispatch;
mod error;
mod fast;
mod linear;
mod norm;
mod op;
mod reference;
mod selection;
mod sgemm;
mod softmax;
mod vmath;

pub use activation::{gelu_erf, gelu_tanh, silu};
pub use api::{
    masked_combine, masked_combine_inplace, masked_combine_rows, masked_swap, masked_swap_inplace,
};
pub use attention::{attention, attention_probs, attention_values, AttentionParams};
pub use combine::Combine;
pub use dispatch::{
    has_fused_kernel, kernel_mode, kernel_path, set_kernel_mode, with_kernel_mode, KernelMode,
    KernelPath, KERNELS_ENV,
};
pub use error::{KernelError, Result};
pub use linear::{linear, WeightLayout};
pub use norm::{layer_norm, rms_norm};
pub use reference::{
    masked_combine_reference, masked_combine_rows_reference, masked_swap_reference,
};
pub use softmax::softmax_last_dim;
