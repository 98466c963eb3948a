//! Branch-free f32 math that the compiler vectorises: `exp`, `erfc`, `tanh` and the
//! activations built on them, plus [`multiversion!`](crate::multiversion), which compiles a
//! loop twice (AVX2+FMA and the baseline) and picks one at run time.
//!
//! Every function here is `#[inline(always)]` and free of branches (only selects), so that a
//! loop calling it element by element is turned into SIMD code by LLVM, with the instruction
//! set of the function it is inlined into. No libm call is made per element.
//!
//! Accuracy (checked in the tests against f64): `exp` within 2 ulp over its whole range,
//! `erfc` within 5e-7 relative, `tanh` within 3e-7 relative (absolute near 0).

/// Compiles the body of a function twice: with AVX2+FMA enabled (used when the CPU has them,
/// detected once per call, which is cheap) and for the baseline target.
///
/// The body must only call `#[inline(always)]` helpers, so that they inherit the features.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU supports avx2 and fma (checked just above), the only
                    // requirement of the `target_feature` function.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// Lanes of the partial sums and maxima of the row loops (one AVX register of f32).
pub(crate) const LANES: usize = 8;

/// `ln 2` split so that `n * LN2_HI` is exact for the `n` that occur (|n| <= 150):
/// `LN2_HI = 355 / 512` has 9 significant bits, `LN2_LO = ln 2 - 355 / 512`.
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// `1.5 * 2^23`: adding it rounds an f32 of magnitude below 2^22 to an integer, which can then
/// be read from the low mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// Below this `exp` underflows to 0 (below the smallest subnormal, 2^-149).
const EXP_LO: f32 = -104.0;
/// Above this `exp` overflows to infinity (`ln f32::MAX` is 88.7228).
const EXP_HI: f32 = 88.8;

/// `x` clamped to `[lo, hi]`, keeping NaN (both comparisons are false for NaN).
#[inline(always)]
pub(crate) fn clamp_keep_nan(x: f32, lo: f32, hi: f32) -> f32 {
    let x = if x < lo { lo } else { x };
    if x > hi {
        hi
    } else {
        x
    }
}

/// `2^n` for `n` in `[-126, 127]`, built from its exponent bits.
#[inline(always)]
fn pow2i(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

/// `e^x`: `x = n ln 2 + r` with `|r| <= ln 2 / 2`, `e^r` by its Taylor series to degree 7
/// (truncation error below 5e-9), scaled by `2^n` in two exact steps so that subnormal results
/// and the top of the range come out right. `-inf -> 0`, `+inf -> inf`, NaN -> NaN.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    exp_hi_lo(x, 0.0)
}

/// `e^(hi + lo)` for finite `hi`, `lo` (`|lo|` of order 1 at most), more accurate than
/// `exp(hi + lo)` when `hi` is large: the part of `lo` that `hi + lo` would round away is kept
/// by adding `lo` to the reduced argument instead.
#[inline(always)]
pub(crate) fn exp_hi_lo(hi: f32, lo: f32) -> f32 {
    let s = hi + lo;
    let xc = clamp_keep_nan(s, EXP_LO, EXP_HI);
    let shifted = xc * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let ni = (shifted.to_bits() as i32).wrapping_sub(ROUND_MAGIC.to_bits() as i32);
    // For large |hi|, hi - n * LN2_HI is exact (the two are within a factor 2 of each other).
    let r = if !(EXP_LO..=EXP_HI).contains(&s) {
        xc - n * LN2_HI - n * LN2_LO
    } else {
        ((hi - n * LN2_HI) - n * LN2_LO) + lo
    };
    // Horner on 1 + r + r^2/2! + ... + r^7/7!.
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // n is in [-150, 129]; both halves stay in the normal exponent range.
    let n1 = ni >> 1;
    let n2 = ni.wrapping_sub(n1);
    p * pow2i(n1) * pow2i(n2)
}

/// Coefficients (degree 0 first) of `g` in `erfc(z) = t e^(-z^2 + g(t))`, `t = 1 / (1 + z/2)`,
/// `z >= 0`: a least-squares fit over `t` in `(0, 1]` made for this crate by
/// `scripts/fit_erfc.py` (max error of `g`, i.e. relative error of erfc, 4.2e-8).
const ERFC_G: [f32; 12] = [
    -1.265_512_1,
    0.999_999_94,
    0.375_020_18,
    0.082_592_66,
    -0.074_735_7,
    -0.233_701_75,
    0.335_524_17,
    -1.225_397_7,
    2.398_703,
    -2.205_086,
    0.991_349,
    -0.178_755_75,
];

/// `erfc(z)` for `z >= 0` (`+inf -> 0`, NaN -> NaN), relative error below 5e-7.
#[inline(always)]
pub(crate) fn erfc_nonneg(z: f32) -> f32 {
    // erfc(10.5) = 7e-50 is 0 in f32: clamping keeps z * z finite for z = inf.
    let z = clamp_keep_nan(z, 0.0, 10.5);
    let t = 1.0 / (1.0 + 0.5 * z);
    let mut g = ERFC_G[11];
    for &c in ERFC_G[..11].iter().rev() {
        g = g * t + c;
    }
    // -z^2 to more than f32 precision: zh (z with 12 mantissa bits) squares exactly, and
    // z^2 - zh^2 = (z - zh)(z + zh) is small; the rounding of -z^2 alone would cost up to
    // z^2 * 2^-24 of relative error (5e-6 at z = 9).
    let zh = f32::from_bits(z.to_bits() & 0xffff_f000);
    let hi = -(zh * zh);
    let lo = (zh - z) * (zh + z) + g;
    t * exp_hi_lo(hi, lo)
}

/// The standard normal CDF `Phi(x) = erfc(-x / sqrt 2) / 2`, accurate relative to its value
/// in the lower tail (no `1 + erf` cancellation).
#[inline(always)]
pub(crate) fn normal_cdf(x: f32) -> f32 {
    let half_tail = 0.5 * erfc_nonneg(x.abs() * std::f32::consts::FRAC_1_SQRT_2);
    if x < 0.0 {
        half_tail
    } else {
        1.0 - half_tail
    }
}

/// `x / (1 + e^-y)` (`x * sigmoid(y)`), with `-0` where `x = -inf` (the limit of every
/// activation built on it) rather than `-inf / inf = NaN`.
#[inline(always)]
fn times_sigmoid(x: f32, y: f32) -> f32 {
    let v = x / (1.0 + exp(-y));
    if x == f32::NEG_INFINITY {
        -0.0
    } else {
        v
    }
}

/// `sqrt(2 / pi)`.
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// The cubic coefficient of the tanh approximation of GELU.
const GELU_CUBIC: f32 = 0.044_715;

/// GELU, tanh approximation: `x (1 + tanh(u)) / 2 = x * sigmoid(2u)`,
/// `u = sqrt(2/pi) (x + 0.044715 x^3)`.
#[inline(always)]
pub(crate) fn gelu_tanh(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x);
    times_sigmoid(x, 2.0 * u)
}

/// Exact GELU `x Phi(x)`; `-0` at `-inf`.
#[inline(always)]
pub(crate) fn gelu_erf(x: f32) -> f32 {
    let v = x * normal_cdf(x);
    if x == f32::NEG_INFINITY {
        -0.0
    } else {
        v
    }
}

/// SiLU `x * sigmoid(x)`.
#[inline(always)]
pub(crate) fn silu(x: f32) -> f32 {
    times_sigmoid(x, x)
}

/// Below this `|x|` tanh is its odd Taylor polynomial, above it `1 - 2 / (e^(2|x|) + 1)`.
const TANH_SERIES_MAX: f32 = 0.4;

/// `tanh(x)`: the Taylor series to `x^15` near 0 (relative error below 1e-8 at 0.4), the
/// exponential form elsewhere (absolute error below 1e-7, relative below 3e-7);
/// `+-inf -> +-1`, NaN -> NaN.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let big = 1.0 - 2.0 / (exp(2.0 * a) + 1.0);
    let big = if x < 0.0 { -big } else { big };
    // tanh x = x - x^3/3 + 2x^5/15 - 17x^7/315 + 62x^9/2835 - 1382x^11/155925
    //          + 21844x^13/6081075 - 929569x^15/638512875 + ...
    let s = x * x;
    let p = -929_569.0 / 638_512_875.0;
    let p = p * s + 21_844.0 / 6_081_075.0;
    let p = p * s - 1_382.0 / 155_925.0;
    let p = p * s + 62.0 / 2_835.0;
    let p = p * s - 17.0 / 315.0;
    let p = p * s + 2.0 / 15.0;
    let p = p * s - 1.0 / 3.0;
    let small = x + x * s * p;
    if a < TANH_SERIES_MAX {
        small
    } else {
        big
    }
}

/// The maximum of `xs` (NaN are skipped; `-inf` when empty or all NaN), in [`LANES`] lanes.
#[inline(always)]
pub(crate) fn max(xs: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a = if x > *a { x } else { *a };
        }
    }
    let mut m = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &x| if x > m { x } else { m });
    for a in acc {
        m = if a > m { a } else { m };
    }
    m
}

/// The sum of `f(x)` over `xs`, in [`LANES`] lanes.
#[inline(always)]
pub(crate) fn sum_map(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    let rest: f32 = chunks.remainder().iter().map(|&x| f(x)).sum();
    acc.iter().sum::<f32>() + rest
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Relative error, absolute below `floor`.
    fn err(got: f32, want: f64, floor: f64) -> f64 {
        (got as f64 - want).abs() / want.abs().max(floor)
    }

    fn sweep(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
        (0..=n).map(move |i| lo + (hi - lo) * i as f64 / n as f64)
    }

    #[test]
    fn exp_matches_f64_over_its_range() {
        let mut worst = 0f64;
        for x in sweep(-103.0, 88.7, 400_000) {
            let want = (x as f32 as f64).exp();
            let got = exp(x as f32);
            if want > f32::MIN_POSITIVE as f64 {
                worst = worst.max(err(got, want, 0.0));
            } else {
                // Subnormal results: within a couple of subnormal steps.
                assert!(
                    (got as f64 - want).abs() < 4.0 * 1.4e-45,
                    "exp({x}) = {got}"
                );
            }
        }
        assert!(worst < 2.5e-7, "worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-200.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(89.0), f32::INFINITY);
        assert!(exp(88.72).is_finite());
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn erfc_and_cdf_match_f64() {
        let mut worst = 0f64;
        for z in sweep(0.0, 9.0, 50_000) {
            let z32 = z as f32;
            let want = libm::erfc(z32 as f64);
            if want > 1e-36 {
                worst = worst.max(err(erfc_nonneg(z32), want, 0.0));
            }
        }
        assert!(worst < 5e-7, "erfc worst relative error {worst}");
        assert_eq!(erfc_nonneg(f32::INFINITY), 0.0);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        // Phi(-5) = 2.866515718791939e-7 (tables of the normal distribution).
        assert!(err(normal_cdf(-5.0), 2.866_515_718_791_939e-7, 0.0) < 1e-6);
        assert_eq!(normal_cdf(f32::NEG_INFINITY), 0.0);
        assert_eq!(normal_cdf(f32::INFINITY), 1.0);
        assert!(normal_cdf(f32::NAN).is_nan());
    }

    #[test]
    fn tanh_matches_f64() {
        let mut worst = 0f64;
        for x in sweep(-12.0, 12.0, 100_001) {
            let x32 = x as f32;
            worst = worst.max(err(tanh(x32), (x32 as f64).tanh(), 1e-30));
        }
        assert!(worst < 3e-7, "tanh worst relative error {worst}");
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(1e-30), 1e-30);
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert!(tanh(f32::NAN).is_nan());
    }

    #[test]
    fn lane_reductions() {
        let xs: Vec<f32> = (0..21).map(|i| ((i * 7) % 11) as f32 - 3.0).collect();
        assert_eq!(max(&xs), 7.0);
        assert_eq!(sum_map(&xs, |x| x * 2.0), xs.iter().sum::<f32>() * 2.0);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        assert_eq!(max(&[f32::NAN, 1.0, f32::NAN]), 1.0);
    }
}
