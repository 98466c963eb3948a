//! The CPU fast paths (activations, softmax, norms, attention, linear) against f64 references,
//! hand-derived values and candle's own ops (the fallback path), including edge inputs.

mod activation;
mod attention;
mod linear;
mod norm;
mod softmax;

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vene_kernels::{with_kernel_mode, KernelMode};

/// A tensor of `shape` with uniform values in `[-scale, scale]` (seeded).
pub fn random(shape: &[usize], scale: f32, seed: u64) -> Tensor {
    let mut rng = StdRng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-scale..=scale)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

pub fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// `f` run with the kernels forced off (candle's ops).
pub fn fallback<R>(f: impl FnOnce() -> R) -> R {
    with_kernel_mode(KernelMode::Fallback, f)
}

/// The largest `|a - b| / max(1, |b|)`, failing on a NaN mismatch.
pub fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(&x, &y)| {
            assert_eq!(x.is_nan(), y.is_nan(), "NaN in one only: {x} vs {y}");
            if x.is_nan() || x == y {
                0.0
            } else {
                (x - y).abs() / y.abs().max(1.0)
            }
        })
        .fold(0.0, f32::max)
}
