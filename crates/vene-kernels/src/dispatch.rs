//! Which implementation runs a masked swap / combine: the fused kernel where the device has
//! one, the plain candle composition everywhere else, decided at run time.
//!
//! The fused kernel exists on the CPU and, when this crate is built with the `cuda` feature,
//! on CUDA devices. Every other device (Metal, CUDA without the feature) uses the
//! composition (a u8 mask and `where_cond`), which gives the same values bit for bit (the
//! selected elements are copied, or `base ± source` is computed once per element, in both).
//!
//! The same mode governs the CPU fast paths (activations, norms, softmax, attention, linear):
//! forced off, they run candle's ops.
//!
//! The kernel can be switched off, for comparison and for tests of the fallback path:
//! - the environment variable `VENE_KERNELS=fallback` (read once, at the first op);
//!   `VENE_KERNELS=fused` or unset means [`KernelMode::Auto`];
//! - [`set_kernel_mode`], for the whole process (it wins over the variable);
//! - [`with_kernel_mode`], for the current thread only, while a closure runs (it wins over
//!   both; tests use it, since it cannot disturb tests running on other threads).

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use candle_core::Device;

/// Whether the masked ops and the CPU fast paths may use this crate's kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KernelMode {
    /// The fused kernel where the device has one, the candle composition elsewhere.
    #[default]
    Auto,
    /// Always the candle composition (the kernel is forced off).
    Fallback,
}

/// The implementation an op runs on a given device (see [`kernel_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KernelPath {
    /// This crate's fused kernel (one pass, no mask, no temporaries).
    Fused,
    /// The candle composition: a u8 mask and `where_cond` (works on every device).
    Fallback,
}

/// The name of the environment variable read once by [`kernel_mode`].
pub const KERNELS_ENV: &str = "VENE_KERNELS";

/// 0: not set by [`set_kernel_mode`] (follow the environment), 1: Auto, 2: Fallback.
static PROCESS_MODE: AtomicU8 = AtomicU8::new(0);
static ENV_MODE: OnceLock<KernelMode> = OnceLock::new();

thread_local! {
    static THREAD_MODE: Cell<Option<KernelMode>> = const { Cell::new(None) };
}

/// Parses a value of `VENE_KERNELS`: `fallback` (any case) forces the composition; anything
/// else (`fused`, `auto`, empty) leaves the choice to the device.
fn parse_env(value: Option<&str>) -> KernelMode {
    match value {
        Some(v) if v.trim().eq_ignore_ascii_case("fallback") => KernelMode::Fallback,
        _ => KernelMode::Auto,
    }
}

/// Sets the mode for the whole process (overrides `VENE_KERNELS`; a [`with_kernel_mode`]
/// scope on a thread still wins on that thread).
///
/// ```
/// use vene_kernels::{kernel_mode, set_kernel_mode, KernelMode};
/// set_kernel_mode(KernelMode::Fallback);
/// assert_eq!(kernel_mode(), KernelMode::Fallback);
/// set_kernel_mode(KernelMode::Auto);
/// assert_eq!(kernel_mode(), KernelMode::Auto);
/// ```
pub fn set_kernel_mode(mode: KernelMode) {
    let code = match mode {
        KernelMode::Auto => 1,
        KernelMode::Fallback => 2,
    };
    PROCESS_MODE.store(code, Ordering::Relaxed);
}

/// The mode in force on this thread: a [`with_kernel_mode`] scope, else [`set_kernel_mode`],
/// else `VENE_KERNELS` (read once), else [`KernelMode::Auto`].
pub fn kernel_mode() -> KernelMode {
    if let Some(mode) = THREAD_MODE.with(Cell::get) {
        return mode;
    }
    match PROCESS_MODE.load(Ordering::Relaxed) {
        1 => KernelMode::Auto,
        2 => KernelMode::Fallback,
        _ => *ENV_MODE.get_or_init(|| parse_env(std::env::var(KERNELS_ENV).ok().as_deref())),
    }
}

/// Runs `f` with `mode` in force on the current thread only (restored afterwards, also when
/// `f` panics).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_kernels::{kernel_path, masked_swap, with_kernel_mode, KernelMode, KernelPath};
/// let base = Tensor::new(&[[1f32, 2., 3.]], &Device::Cpu)?;
/// let source = Tensor::new(&[[7f32, 8., 9.]], &Device::Cpu)?;
/// let fused = masked_swap(&base, &source, &[1])?;
/// let composed = with_kernel_mode(KernelMode::Fallback, || {
///     assert_eq!(kernel_path(&Device::Cpu), KernelPath::Fallback);
///     masked_swap(&base, &source, &[1])
/// })?;
/// assert_eq!(fused.to_vec2::<f32>()?, composed.to_vec2::<f32>()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn with_kernel_mode<R>(mode: KernelMode, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<KernelMode>);
    impl Drop for Restore {
        fn drop(&mut self) {
            THREAD_MODE.with(|m| m.set(self.0));
        }
    }
    let _restore = Restore(THREAD_MODE.with(|m| m.replace(Some(mode))));
    f()
}

/// Whether this build has a fused kernel for `device`: the CPU always, CUDA with the crate
/// feature `cuda`, nothing else (Metal uses the composition).
///
/// ```
/// assert!(vene_kernels::has_fused_kernel(&candle_core::Device::Cpu));
/// ```
pub fn has_fused_kernel(device: &Device) -> bool {
    match device {
        Device::Cpu => true,
        Device::Cuda(_) => cfg!(feature = "cuda"),
        Device::Metal(_) => false,
    }
}

/// The implementation the masked ops run on `device` under the current [`kernel_mode`].
pub fn kernel_path(device: &Device) -> KernelPath {
    if kernel_mode() == KernelMode::Auto && has_fused_kernel(device) {
        KernelPath::Fused
    } else {
        KernelPath::Fallback
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_values() {
        assert_eq!(parse_env(Some("fallback")), KernelMode::Fallback);
        assert_eq!(parse_env(Some(" FallBack ")), KernelMode::Fallback);
        assert_eq!(parse_env(Some("fused")), KernelMode::Auto);
        assert_eq!(parse_env(Some("")), KernelMode::Auto);
        assert_eq!(parse_env(None), KernelMode::Auto);
    }

    #[test]
    fn thread_scope_wins_and_is_restored() {
        let outer = kernel_mode();
        with_kernel_mode(KernelMode::Fallback, || {
            assert_eq!(kernel_path(&Device::Cpu), KernelPath::Fallback);
            with_kernel_mode(KernelMode::Auto, || {
                assert_eq!(kernel_path(&Device::Cpu), KernelPath::Fused);
            });
            assert_eq!(kernel_mode(), KernelMode::Fallback);
        });
        assert_eq!(kernel_mode(), outer);
        let r = std::panic::catch_unwind(|| {
            with_kernel_mode(KernelMode::Fallback, || panic!("inside"));
        });
        assert!(r.is_err());
        assert_eq!(kernel_mode(), outer);
    }
}
