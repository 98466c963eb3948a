//! `c += a w^T` for a few rows of `a` and an `[out, in]` weight: one pass over the weight, split
//! by output column over the rayon threads. Each weight element is read once per call, in
//! order within its row.

use rayon::prelude::*;

use super::Operands;
use crate::vmath::{multiversion, LANES};

/// Output columns per rayon task (each a dot product over `k`).
const COLUMNS_PER_TASK: usize = 64;

/// `c += a w^T` for an `[out, in]` weight `w` (`[n, k]`) and a few rows of `a` (looped
/// inside each task, so each weight row is read once, while it is in L1).
pub(super) fn out_in(ops: Operands<'_>, c: &mut [f32]) {
    let Operands { m, k, n, a, w, .. } = ops;
    // Each task owns a block of columns of all m rows, computed into a scratch and added
    // to `c` afterwards (the block is not contiguous in `c` when m > 1).
    let blocks: Vec<(usize, Vec<f32>)> = (0..n)
        .into_par_iter()
        .step_by(COLUMNS_PER_TASK)
        .map(|j0| {
            let nb = COLUMNS_PER_TASK.min(n - j0);
            let mut out = vec![0f32; m * nb];
            for j in 0..nb {
                let wj = &w[(j0 + j) * k..(j0 + j + 1) * k];
                for i in 0..m {
                    out[i * nb + j] = dot(&a[i * k..(i + 1) * k], wj);
                }
            }
            (j0, out)
        })
        .collect();
    for (j0, out) in blocks {
        let nb = out.len() / m;
        for i in 0..m {
            c[i * n + j0..i * n + j0 + nb]
                .iter_mut()
                .zip(&out[i * nb..(i + 1) * nb])
                .for_each(|(c, o)| *c += o);
        }
    }
}

multiversion! {
    /// `sum_p x[p] y[p]`, in `LANES` partial sums (four registers) added at the end.
    fn dot(x: &[f32], y: &[f32]) -> f32 {
        const UNROLL: usize = 4 * LANES;
        let mut acc = [0f32; UNROLL];
        let mut xs = x.chunks_exact(UNROLL);
        let mut ys = y.chunks_exact(UNROLL);
        for (xc, yc) in (&mut xs).zip(&mut ys) {
            for l in 0..UNROLL {
                acc[l] += xc[l] * yc[l];
            }
        }
        let mut tail = 0f32;
        for (a, b) in xs.remainder().iter().zip(ys.remainder()) {
            tail += a * b;
        }
        acc.iter().sum::<f32>() + tail
    }
}
