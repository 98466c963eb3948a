//! How a selected latent of the output is formed from base and source.

/// How the selected latents of the output are formed; unselected latents are always `base`.
///
/// These are pyvene's swap-shaped interventions on selected dims: Vanilla
/// ([`Combine::Replace`]), Addition ([`Combine::Add`]) and Subtraction ([`Combine::Subtract`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Combine {
    /// `out[.., i] = source[.., i]` (the interchange).
    #[default]
    Replace,
    /// `out[.., i] = base[.., i] + source[.., i]`.
    Add,
    /// `out[.., i] = base[.., i] - source[.., i]`.
    Subtract,
}

impl Combine {
    /// The op code the CUDA kernels use (0 replace, 1 add, 2 subtract).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn code(self) -> i32 {
        match self {
            Combine::Replace => 0,
            Combine::Add => 1,
            Combine::Subtract => 2,
        }
    }

    /// Combines one base and one source element.
    #[inline(always)]
    pub(crate) fn apply<T: Elem>(self, base: T, source: T) -> T {
        match self {
            Combine::Replace => source,
            Combine::Add => base + source,
            Combine::Subtract => base - source,
        }
    }
}

/// Element types the CPU kernel works on (f32, f64, f16, bf16).
pub(crate) trait Elem:
    Copy + Send + Sync + std::ops::Add<Output = Self> + std::ops::Sub<Output = Self> + 'static
{
}

impl Elem for f32 {}
impl Elem for f64 {}
impl Elem for half::f16 {}
impl Elem for half::bf16 {}
