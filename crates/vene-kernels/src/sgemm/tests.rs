//! Every path of `matmul_acc` against a product in f64, at sizes that cross each block edge.

use super::{matmul_acc, Operands, BLOCKED_MIN_ROWS, GEMV_MAX_ROWS};
use crate::linear::WeightLayout;

/// A deterministic value in [-1, 1) for index `i` of stream `seed`.
fn value(seed: u64, i: usize) -> f32 {
    let mut x = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ seed.wrapping_mul(0xD1B5_4A32_D192_ED03);
    x ^= x >> 29;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 32;
    (x % 2001) as f32 / 1000.0 - 1.0
}

/// `c0 + a b` in f64, with `b[p, j]` read from `w` in `layout`.
fn reference(
    (m, k, n): (usize, usize, usize),
    a: &[f32],
    w: &[f32],
    layout: WeightLayout,
    c0: &[f32],
) -> Vec<f64> {
    let mut out: Vec<f64> = c0.iter().map(|&v| v as f64).collect();
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for p in 0..k {
                let b = match layout {
                    WeightLayout::InOut => w[p * n + j],
                    WeightLayout::OutIn => w[j * k + p],
                };
                s += a[i * k + p] as f64 * b as f64;
            }
            out[i * n + j] += s;
        }
    }
    out
}

fn check(dims: (usize, usize, usize), layout: WeightLayout, threads: usize) {
    let (m, k, n) = dims;
    let a: Vec<f32> = (0..m * k).map(|i| value(1, i)).collect();
    let w: Vec<f32> = (0..k * n).map(|i| value(2, i)).collect();
    let c0: Vec<f32> = (0..m * n).map(|i| value(3, i)).collect();
    let mut c = c0.clone();
    let ops = Operands {
        m,
        k,
        n,
        a: &a,
        w: &w,
        layout,
    };
    matmul_acc(ops, &mut c, threads);
    let want = reference(dims, &a, &w, layout, &c0);
    for (idx, (&got, &want)) in c.iter().zip(&want).enumerate() {
        let tol = 1e-5 * (k as f64).sqrt().max(1.0) * (1.0 + want.abs());
        assert!(
            (got as f64 - want).abs() <= tol,
            "{dims:?} {layout:?} threads {threads}: element {idx} (row {}, column {}) is {got}, \
             want {want}",
            idx / n,
            idx % n
        );
    }
}

#[test]
fn every_path_matches_the_f64_product_across_block_edges() {
    let rows = [
        1,
        GEMV_MAX_ROWS,
        3,
        6,
        7,
        BLOCKED_MIN_ROWS - 1,
        BLOCKED_MIN_ROWS,
        97,
        200,
    ];
    for layout in [WeightLayout::InOut, WeightLayout::OutIn] {
        for &m in &rows {
            for &(k, n) in &[(1, 1), (5, 15), (9, 16), (17, 17), (300, 33), (257, 70)] {
                for threads in [1, 2, 3] {
                    check((m, k, n), layout, threads);
                }
            }
        }
    }
}

#[test]
fn the_blocked_path_crosses_its_column_block() {
    // More columns than one packed block of the weight (2048) and an odd tail sliver.
    for threads in [1, 2] {
        check((7, 9, 2048 + 16 * 3 + 5), WeightLayout::InOut, threads);
        check((100, 20, 2100), WeightLayout::InOut, threads);
    }
}

#[test]
fn empty_products_leave_the_output_as_it_was() {
    let mut c = vec![1.5f32; 6];
    let ops = Operands {
        m: 2,
        k: 0,
        n: 3,
        a: &[],
        w: &[],
        layout: WeightLayout::InOut,
    };
    matmul_acc(ops, &mut c, 2);
    assert_eq!(c, vec![1.5; 6]);
}
