//! Shared test helpers: seeded random weights and hand-written reference math.
#![allow(dead_code)]

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub type Mat = Vec<Vec<f32>>;

pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

pub fn rand_mat(rng: &mut StdRng, rows: usize, cols: usize, scale: f32) -> Mat {
    (0..rows)
        .map(|_| (0..cols).map(|_| rng.random_range(-scale..scale)).collect())
        .collect()
}

pub fn rand_vec(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

pub fn t2(m: &Mat) -> Tensor {
    let rows = m.len();
    let cols = m.first().map_or(0, |r| r.len());
    let flat: Vec<f32> = m.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (rows, cols), &Device::Cpu).unwrap()
}

pub fn t1(v: &[f32]) -> Tensor {
    Tensor::from_vec(v.to_vec(), v.len(), &Device::Cpu).unwrap()
}

pub fn transpose(m: &Mat) -> Mat {
    let cols = m.first().map_or(0, |r| r.len());
    (0..cols)
        .map(|j| m.iter().map(|r| r[j]).collect())
        .collect()
}

/// `pre[i][j] = sum_k (x[i][k] - sub[k]) * w_in_out[k][j] + b[j]`.
pub fn ref_pre(x: &Mat, w_in_out: &Mat, b: &[f32], sub: Option<&[f32]>) -> Mat {
    x.iter()
        .map(|row| {
            (0..b.len())
                .map(|j| {
                    let mut acc = b[j] as f64;
                    for (k, &xv) in row.iter().enumerate() {
                        let xin = xv - sub.map_or(0.0, |s| s[k]);
                        acc += xin as f64 * w_in_out[k][j] as f64;
                    }
                    acc as f32
                })
                .collect()
        })
        .collect()
}

pub fn ref_relu(m: &Mat) -> Mat {
    m.iter()
        .map(|r| r.iter().map(|&v| v.max(0.0)).collect())
        .collect()
}

pub fn ref_jumprelu(pre: &Mat, thr: &[f32]) -> Mat {
    pre.iter()
        .map(|r| {
            r.iter()
                .zip(thr)
                .map(|(&v, &t)| if v > t { v.max(0.0) } else { 0.0 })
                .collect()
        })
        .collect()
}

/// Keeps the k largest of each row of relu(pre).
pub fn ref_topk(pre: &Mat, k: usize) -> Mat {
    pre.iter()
        .map(|r| {
            let relu: Vec<f32> = r.iter().map(|v| v.max(0.0)).collect();
            let mut order: Vec<usize> = (0..relu.len()).collect();
            order.sort_by(|&a, &b| relu[b].partial_cmp(&relu[a]).unwrap());
            let mut out = vec![0.0; relu.len()];
            for &j in order.iter().take(k) {
                out[j] = relu[j];
            }
            out
        })
        .collect()
}

/// `out[i][k] = sum_j z[i][j] * w_in_out[j][k] + b[k]`.
pub fn ref_dec(z: &Mat, w_in_out: &Mat, b: &[f32]) -> Mat {
    ref_pre(z, w_in_out, b, None)
}

pub fn to_mat(t: &Tensor) -> Mat {
    t.to_dtype(candle_core::DType::F32)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
}

pub fn assert_close(got: &Mat, want: &Mat, tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.len(), w.len(), "{what}: width of row {i}");
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            assert!(
                (a - b).abs() <= tol,
                "{what}[{i}][{j}]: got {a}, want {b} (tol {tol})"
            );
        }
    }
}
