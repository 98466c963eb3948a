//! The f32 matrix product of the linear layers on the CPU: `C += A B`, with `A` the
//! activations (`[m, k]`, row-major) and `B` the weight read through its [`WeightLayout`].
//!
//! Three paths, by the number of rows `m`, the layout and what the CPU has:
//!
//! - an `[out, in]` weight and `m <= GEMV_MAX_ROWS` ([`gemv`]): one pass over the weight, a
//!   dot product per output, split over the rayon threads by output column (last-token
//!   logits, an autoencoder at one position). The gemm crate reads this case at about 0.8x.
//! - `m >= BLOCKED_MIN_ROWS`, or an `[out, in]` weight, on x86-64 with AVX2 and FMA
//!   ([`blocked`]): a cache-blocked gemm with a 6 x 16 register kernel. At the shapes of a
//!   GPT-2-small forward it runs at 0.9x to 1.6x the gemm crate's rate one product at a time,
//!   and a batch 1 x 32 forward takes 0.7x to 0.8x of the time (docs/benchmarks.md).
//! - everything else (a few rows of an `[in, out]` weight, where the gemm crate's own small
//!   kernels win, and CPUs without AVX2): the gemm crate, as candle's matmul does.

mod blocked;
mod gemv;

use gemm::Parallelism;

use crate::linear::WeightLayout;

/// Up to this many rows, a product with an `[out, in]` weight is a pass over the weight
/// ([`gemv`]).
pub(crate) const GEMV_MAX_ROWS: usize = 2;
/// From this many rows, a product with an `[in, out]` weight goes through [`blocked`] (where
/// the CPU allows); below, the gemm crate.
pub(crate) const BLOCKED_MIN_ROWS: usize = 16;

/// The operands of `c += a b`: `a` `[m, k]` row-major and the weight `w` (`k * n` elements in
/// `layout`), read as `b` `[k, n]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operands<'a> {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub a: &'a [f32],
    pub w: &'a [f32],
    pub layout: WeightLayout,
}

/// `c += a b` for the operands `ops` and `c` `[m, n]` row-major, using up to `threads` rayon
/// threads.
///
/// The caller guarantees the lengths: `a.len() == m * k`, `w.len() == k * n`,
/// `c.len() == m * n` (checked here in debug builds).
pub(crate) fn matmul_acc(ops: Operands<'_>, c: &mut [f32], threads: usize) {
    let Operands {
        m,
        k,
        n,
        a,
        w,
        layout,
    } = ops;
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(w.len(), k * n);
    debug_assert_eq!(c.len(), m * n);
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    let out_in = layout == WeightLayout::OutIn;
    if out_in && m <= GEMV_MAX_ROWS {
        gemv::out_in(ops, c);
        return;
    }
    if (out_in || m >= BLOCKED_MIN_ROWS) && blocked::run(ops, c, threads) {
        return;
    }
    gemm_crate(ops, c, threads);
}

/// `c += a b` through the gemm crate (the path candle's matmul takes).
fn gemm_crate(ops: Operands<'_>, c: &mut [f32], threads: usize) {
    let Operands {
        m,
        k,
        n,
        a,
        w,
        layout,
    } = ops;
    // (row stride, column stride) of the weight read as the [k, n] right operand.
    let (w_rs, w_cs) = match layout {
        WeightLayout::InOut => (n, 1),
        WeightLayout::OutIn => (1, k),
    };
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: a is [m, k] row-major, w holds k * n elements reached through (w_rs, w_cs) for
    // indices below (k, n), c is [m, n] row-major and exclusively borrowed; the lengths are
    // the caller's contract (debug-checked above).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            true,
            a.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            w_cs as isize,
            w_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests;
