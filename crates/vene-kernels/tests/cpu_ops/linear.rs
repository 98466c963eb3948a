use candle_core::{Device, Tensor};
use vene_kernels::{linear, KernelError, WeightLayout};

use crate::{fallback, flat, max_rel_diff, random};

#[test]
fn fused_bias_matches_matmul_plus_bias() {
    // Small, and large enough for the threaded bias fill (64 * 1024 outputs).
    for (x_shape, d_out, seed) in [(vec![3, 5, 7], 11, 1u64), (vec![64, 96], 1024, 2)] {
        let d_in = *x_shape.last().unwrap();
        let x = random(&x_shape, 1.0, seed);
        let w = random(&[d_out, d_in], 1.0, seed + 1);
        let b = random(&[d_out], 1.0, seed + 2);
        let want = x
            .broadcast_matmul(&w.t().unwrap())
            .unwrap()
            .broadcast_add(&b)
            .unwrap();
        let got = linear(&x, &w, Some(&b), WeightLayout::OutIn).unwrap();
        assert_eq!(got.dims(), want.dims());
        assert!(max_rel_diff(&flat(&got), &flat(&want)) < 1e-5);
        let wt = w.t().unwrap().contiguous().unwrap();
        let got = linear(&x, &wt, Some(&b), WeightLayout::InOut).unwrap();
        assert!(max_rel_diff(&flat(&got), &flat(&want)) < 1e-5);
        let slow = fallback(|| linear(&x, &wt, Some(&b), WeightLayout::InOut).unwrap());
        assert!(max_rel_diff(&flat(&slow), &flat(&want)) < 1e-5);
        let no_bias = linear(&x, &w, None, WeightLayout::OutIn).unwrap();
        let want = x.broadcast_matmul(&w.t().unwrap()).unwrap();
        assert!(max_rel_diff(&flat(&no_bias), &flat(&want)) < 1e-5);
    }
}

#[test]
fn hand_values() {
    let x = Tensor::new(&[[1f32, -1.], [2., 0.5]], &Device::Cpu).unwrap();
    let w = Tensor::new(&[[3f32, 1.], [0., 2.]], &Device::Cpu).unwrap();
    let b = Tensor::new(&[10f32, 20.], &Device::Cpu).unwrap();
    let y = linear(&x, &w, Some(&b), WeightLayout::InOut).unwrap();
    // x W + b: [1*3 + -1*0, 1*1 + -1*2] + b, [6, 2 + 1] + b.
    assert_eq!(y.to_vec2::<f32>().unwrap(), [[13., 19.], [16., 23.]]);
}

#[test]
fn shapes_are_checked() {
    let x = random(&[2, 3], 1.0, 3);
    let w = random(&[4, 3], 1.0, 4);
    let err = linear(&x, &w, None, WeightLayout::InOut).unwrap_err();
    assert!(
        matches!(err, KernelError::BadShape { op: "linear", .. }),
        "{err}"
    );
    let b = random(&[3], 1.0, 5);
    let err = linear(&x, &w, Some(&b), WeightLayout::OutIn).unwrap_err();
    assert!(
        matches!(&err, KernelError::BadShape { detail, .. } if detail.contains("bias")),
        "{err}"
    );
}
