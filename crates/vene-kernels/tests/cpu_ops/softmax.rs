use candle_core::{Device, Tensor};
use vene_kernels::{softmax_last_dim, KernelError};

use crate::{fallback, flat, max_rel_diff, random};

#[test]
fn matches_candle_on_random_rows() {
    // Widths around the lane count, and a large input that runs on several threads.
    for (shape, seed) in [
        (vec![5, 1], 1),
        (vec![3, 7], 2),
        (vec![4, 8], 3),
        (vec![2, 3, 17], 4),
        (vec![8, 12, 16, 128], 5),
    ] {
        let x = random(&shape, 10.0, seed);
        let fast = flat(&softmax_last_dim(&x).unwrap());
        let want = candle_nn::ops::softmax_last_dim(&x).unwrap();
        let d = max_rel_diff(&fast, &flat(&want));
        assert!(d < 1e-6, "{shape:?}: {d}");
        let width = *shape.last().unwrap();
        for row in fast.chunks(width) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        assert_eq!(
            flat(&fallback(|| softmax_last_dim(&x).unwrap())),
            flat(&want)
        );
    }
}

#[test]
fn hand_values_and_edges() {
    let inf = f32::INFINITY;
    let x = Tensor::new(
        &[
            [0.0, 2f32.ln(), 0.0],
            [1000.0, 0.0, -1000.0],
            [f32::MIN, f32::MIN, f32::MIN],
            [-inf, -inf, -inf],
            [-inf, 0.0, -inf],
        ],
        &Device::Cpu,
    )
    .unwrap();
    let p = softmax_last_dim(&x).unwrap().to_vec2::<f32>().unwrap();
    let close = |a: f32, b: f32| (a - b).abs() < 1e-7;
    assert!(close(p[0][0], 0.25) && close(p[0][1], 0.5) && close(p[0][2], 0.25));
    assert_eq!(p[1], [1.0, 0.0, 0.0]);
    assert!(p[2].iter().all(|&v| close(v, 1.0 / 3.0)));
    // All -inf: NaN, as candle's kernel (documented).
    assert!(p[3].iter().all(|v| v.is_nan()));
    let candle = candle_nn::ops::softmax_last_dim(&x).unwrap();
    assert!(candle.to_vec2::<f32>().unwrap()[3]
        .iter()
        .all(|v| v.is_nan()));
    assert_eq!(p[4], [0.0, 1.0, 0.0]);
}

#[test]
fn scalar_is_an_error() {
    let err = softmax_last_dim(&Tensor::new(1f32, &Device::Cpu).unwrap()).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::BadShape {
                op: "softmax_last_dim",
                ..
            }
        ),
        "{err}"
    );
}
