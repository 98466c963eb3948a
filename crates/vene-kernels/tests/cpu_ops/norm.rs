use candle_core::{Device, Tensor};
use vene_kernels::{layer_norm, rms_norm, KernelError};

use crate::{fallback, flat, max_rel_diff, random};

/// Layer norm of one row in f64.
fn layer_norm_f64(x: &[f32], w: &[f32], b: &[f32], eps: f64) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let inv = 1.0 / (var + eps).sqrt();
    x.iter()
        .zip(w)
        .zip(b)
        .map(|((&v, &w), &b)| (v as f64 - mean) * inv * w as f64 + b as f64)
        .collect()
}

#[test]
fn layer_norm_matches_f64_and_candle() {
    for (shape, seed) in [
        (vec![3, 5], 1u64),
        (vec![1024, 768], 2),
        (vec![2, 4, 33], 3),
    ] {
        let width = *shape.last().unwrap();
        // An offset mean, as in a residual stream.
        let x = (random(&shape, 4.0, seed) + 3.0).unwrap();
        let w = random(&[width], 2.0, seed + 10);
        let b = random(&[width], 1.0, seed + 20);
        let y = flat(&layer_norm(&x, &w, &b, 1e-5).unwrap());
        let (xv, wv, bv) = (flat(&x), flat(&w), flat(&b));
        for (xr, yr) in xv.chunks(width).zip(y.chunks(width)) {
            for (got, want) in yr.iter().zip(layer_norm_f64(xr, &wv, &bv, 1e-5)) {
                assert!((*got as f64 - want).abs() < 2e-5, "{got} vs {want}");
            }
        }
        let candle = candle_nn::ops::layer_norm(&x, &w, &b, 1e-5).unwrap();
        assert!(max_rel_diff(&y, &flat(&candle)) < 1e-5);
        let slow = fallback(|| layer_norm(&x, &w, &b, 1e-5).unwrap());
        assert_eq!(flat(&slow), flat(&candle));
    }
}

#[test]
fn layer_norm_constant_row_is_the_bias() {
    let x = Tensor::new(&[[7f32; 9]], &Device::Cpu).unwrap();
    let w = random(&[9], 1.0, 4);
    let b = random(&[9], 1.0, 5);
    assert_eq!(flat(&layer_norm(&x, &w, &b, 1e-5).unwrap()), flat(&b));
}

#[test]
fn rms_norm_matches_hand_and_candle() {
    let x = random(&[64, 300], 3.0, 6);
    let w = random(&[300], 1.5, 7);
    let y = flat(&rms_norm(&x, &w, 1e-6).unwrap());
    let (xv, wv) = (flat(&x), flat(&w));
    for (xr, yr) in xv.chunks(300).zip(y.chunks(300)) {
        let ms = xr.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 300.0;
        let inv = 1.0 / (ms + 1e-6).sqrt();
        for ((got, &v), &w) in yr.iter().zip(xr).zip(&wv) {
            let want = v as f64 * inv * w as f64;
            assert!((*got as f64 - want).abs() < 1e-5, "{got} vs {want}");
        }
    }
    let candle = candle_nn::ops::rms_norm(&x, &w, 1e-6).unwrap();
    assert!(max_rel_diff(&y, &flat(&candle)) < 1e-5);
    assert_eq!(
        flat(&fallback(|| rms_norm(&x, &w, 1e-6).unwrap())),
        flat(&candle)
    );
}

#[test]
fn parameter_shapes_are_checked() {
    let x = random(&[2, 4], 1.0, 8);
    let w4 = random(&[4], 1.0, 9);
    let w3 = random(&[3], 1.0, 10);
    let err = layer_norm(&x, &w4, &w3, 1e-5).unwrap_err();
    assert!(
        matches!(&err, KernelError::BadShape { op: "layer_norm", detail } if detail.contains("bias")),
        "{err}"
    );
    let err = rms_norm(&x, &w3, 1e-5).unwrap_err();
    assert!(
        matches!(err, KernelError::BadShape { op: "rms_norm", .. }),
        "{err}"
    );
    let scalar = Tensor::new(1f32, &Device::Cpu).unwrap();
    assert!(rms_norm(&scalar, &w4, 1e-5).is_err());
}
