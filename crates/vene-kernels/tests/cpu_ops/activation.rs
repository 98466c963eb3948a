use candle_core::{Device, Tensor, Var};
use vene_kernels::{gelu_erf, gelu_tanh, silu};

use crate::{fallback, flat, max_rel_diff, random};

fn gelu_tanh_f64(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
}

fn gelu_erf_f64(x: f64) -> f64 {
    // x Phi(x), Phi through erfc so the lower tail is accurate.
    0.5 * x * libm::erfc(-x / std::f64::consts::SQRT_2)
}

fn silu_f64(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

type Op = fn(&Tensor) -> vene_kernels::Result<Tensor>;
type Reference = fn(f64) -> f64;
const OPS: [(&str, Op, Reference); 3] = [
    ("gelu_tanh", gelu_tanh, gelu_tanh_f64),
    ("gelu_erf", gelu_erf, gelu_erf_f64),
    ("silu", silu, silu_f64),
];

#[test]
fn sweep_within_1e6_of_f64() {
    // x in [-20, 20] every 1/1024 (exact in f32): 40961 values, several threads.
    let xs: Vec<f32> = (-20 * 1024..=20 * 1024)
        .map(|i| i as f32 / 1024.0)
        .collect();
    let x = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
    for (name, op, reference) in OPS {
        let y = flat(&op(&x).unwrap());
        for (&xi, &yi) in xs.iter().zip(&y) {
            let want = reference(xi as f64);
            let tol = 1e-6 * want.abs().max(1.0);
            assert!(
                (yi as f64 - want).abs() <= tol,
                "{name}({xi}) = {yi}, f64 says {want}"
            );
        }
    }
}

#[test]
fn infinities_nan_and_zero() {
    let x = Tensor::new(
        &[f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 0.0, -0.0],
        &Device::Cpu,
    )
    .unwrap();
    for (name, op, _) in OPS {
        let y = flat(&op(&x).unwrap());
        assert_eq!(y[0], f32::INFINITY, "{name}(inf)");
        assert_eq!(y[1], 0.0, "{name}(-inf) must be the limit 0");
        assert!(y[2].is_nan(), "{name}(NaN)");
        assert_eq!((y[3], y[4]), (0.0, 0.0), "{name}(+-0)");
    }
    // Far in the tails: x for large x, a tiny negative (or zero) value for large -x.
    let x = Tensor::new(&[1e30f32, -1e30, 30.0, -30.0], &Device::Cpu).unwrap();
    for (name, op, _) in OPS {
        let y = flat(&op(&x).unwrap());
        assert_eq!(y[0], 1e30, "{name}");
        assert_eq!(y[1], 0.0, "{name}");
        assert_eq!(y[2], 30.0, "{name}");
        assert!(y[3] <= 0.0 && y[3] > -1e-11, "{name}(-30) = {}", y[3]);
    }
}

#[test]
fn match_candle_and_fallback_is_candle() {
    let x = random(&[37, 129], 8.0, 1);
    let candle: [Tensor; 3] = [x.gelu().unwrap(), x.gelu_erf().unwrap(), x.silu().unwrap()];
    for ((name, op, _), want) in OPS.into_iter().zip(&candle) {
        let fast = flat(&op(&x).unwrap());
        let d = max_rel_diff(&fast, &flat(want));
        assert!(d < 2e-6, "{name}: {d}");
        // Forced off, the op is candle's, bit for bit.
        let slow = fallback(|| op(&x).unwrap());
        assert_eq!(flat(&slow), flat(want), "{name}");
    }
}

#[test]
fn strided_and_tracked_inputs_take_candle_ops() {
    let x = random(&[6, 10], 3.0, 2);
    let xt = x.t().unwrap();
    let d = max_rel_diff(&flat(&gelu_tanh(&xt).unwrap()), &flat(&xt.gelu().unwrap()));
    assert_eq!(d, 0.0);
    // A tracked input keeps its gradient: d/dx silu at 0 is 1/2.
    let v = Var::new(&[0f32, 1.0], &Device::Cpu).unwrap();
    let y = silu(v.as_tensor()).unwrap().sum_all().unwrap();
    let g = y.backward().unwrap();
    let g = flat(g.get(v.as_tensor()).unwrap());
    assert!((g[0] - 0.5).abs() < 1e-6);
    // d/dx x s(x) = s(x) (1 + x (1 - s(x))) at 1: 0.7310586 * 1.2689414 = 0.9276705
    assert!((g[1] - 0.927_670_5).abs() < 1e-5);
}
