//! A cache-blocked f32 gemm for `c += a b` on x86-64 with AVX2 and FMA, `b` `[k, n]` being the
//! weight read through its layout (`[in, out]`: `b = w`; `[out, in]`: `b = w^T`).
//!
//! The weight is packed in blocks of `KC` x `NC` into 16-column slivers (an `[in, out]` weight
//! row by row, in order; an `[out, in]` one by 8 x 8 register transposes), `a` in blocks of
//! `MC` rows into 6-row slivers, and a 6 x 16 register kernel (12 accumulators) runs over them,
//! the weight's sliver staying in L1 while the rows of `a` pass. The kernel prefetches its
//! tile of `c` before its loop, so that the tile's load at the end does not stall. The columns
//! are split over the threads, each packing its own part of the weight.

use super::Operands;
use crate::linear::WeightLayout;

/// Rows of the register kernel.
const MR: usize = 6;
/// Columns of the register kernel (two AVX registers).
const NR: usize = 16;
/// Depth of a packed block (the weight's sliver, `KC x NR` f32 = 16 KiB, stays in L1).
const KC: usize = 256;
/// Rows of `a` per packed block (`MC x KC` f32 = 96 KiB, in L2).
const MC: usize = 96;
/// Columns of the weight per packed block (`KC x NC` f32 = 2 MiB).
const NC: usize = 2048;

/// Runs the product when the CPU has AVX2 and FMA; returns `false` (nothing done) otherwise.
/// Lengths as in [`super::matmul_acc`].
pub(super) fn run(ops: Operands<'_>, c: &mut [f32], threads: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            split_columns(ops, c, threads);
            return true;
        }
    }
    let _ = (ops, c, threads);
    false
}

/// `c` as a raw pointer that the threads share: each writes only its own columns.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: the threads given a `SharedOut` write disjoint column ranges of `c` (see
// `split_columns`), and `c` outlives the scope they run in.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

/// Splits the `n` columns into one range per thread (whole slivers) and runs them.
#[cfg(target_arch = "x86_64")]
fn split_columns(ops: Operands<'_>, c: &mut [f32], threads: usize) {
    let n = ops.n;
    let parts = threads.max(1).min(n.div_ceil(NR));
    let per_part = n.div_ceil(parts).div_ceil(NR) * NR;
    let out = SharedOut(c.as_mut_ptr());
    rayon::scope(|s| {
        for part in 0..parts {
            let j0 = part * per_part;
            if j0 >= n {
                break;
            }
            let cols = per_part.min(n - j0);
            s.spawn(move |_| {
                let out = out;
                // SAFETY: AVX2 and FMA were detected by `run`; this part writes only columns
                // j0..j0 + cols of the m x n output, which no other part touches.
                unsafe { columns(ops, out.0, j0, cols) }
            });
        }
    });
}

/// Columns `j0..j0 + cols` of `c += a w`, single-threaded.
///
/// # Safety
/// AVX2 and FMA are available; `c` points to `m * n` f32 of which this call alone writes the
/// given columns; `a` and `w` have `m * k` and `k * n` elements.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn columns(ops: Operands<'_>, c: *mut f32, j0: usize, cols: usize) {
    let Operands {
        m,
        k,
        n,
        a,
        w,
        layout,
    } = ops;
    let mut packed_w = vec![0f32; KC * NC.min(cols.div_ceil(NR) * NR)];
    let mut packed_a = vec![0f32; KC * MC.min(m).div_ceil(MR) * MR];
    for jc in (0..cols).step_by(NC) {
        let nc = NC.min(cols - jc);
        for pc in (0..k).step_by(KC) {
            let kc = KC.min(k - pc);
            let block = WeightBlock {
                pc,
                kc,
                j0: j0 + jc,
                nc,
            };
            match layout {
                WeightLayout::InOut => pack_in_out(w, n, &block, &mut packed_w),
                // SAFETY: AVX2 is available (this function's features).
                WeightLayout::OutIn => unsafe { pack_out_in(w, k, &block, &mut packed_w) },
            }
            for ic in (0..m).step_by(MC) {
                let mc = MC.min(m - ic);
                pack_a(a, k, ic, mc, pc, kc, &mut packed_a);
                // SAFETY: rows ic..ic + mc, columns j0 + jc..j0 + jc + nc lie inside c and in
                // this call's columns.
                unsafe {
                    macro_block(mc, nc, kc, &packed_a, &packed_w, c.add(ic * n + j0 + jc), n)
                };
            }
        }
    }
}

/// Rows `pc..pc + kc` and columns `j0..j0 + nc` of the weight read as `b` `[k, n]`.
struct WeightBlock {
    pc: usize,
    kc: usize,
    j0: usize,
    nc: usize,
}

/// A block of an `[in, out]` weight `w` (`b = w`, row stride `n`) into slivers of `NR`
/// columns, `kc` rows each (`out[sliver * kc * NR + p * NR + j]`), the last sliver
/// zero-padded. Each row is read once, in order.
#[inline(always)]
fn pack_in_out(w: &[f32], n: usize, blk: &WeightBlock, out: &mut [f32]) {
    let WeightBlock { pc, kc, j0, nc } = *blk;
    let full = nc / NR * NR;
    for p in 0..kc {
        let row = &w[(pc + p) * n + j0..(pc + p) * n + j0 + nc];
        for jr in (0..full).step_by(NR) {
            let at = jr * kc + p * NR;
            out[at..at + NR].copy_from_slice(&row[jr..jr + NR]);
        }
        if full < nc {
            let at = full * kc + p * NR;
            let rest = nc - full;
            out[at..at + rest].copy_from_slice(&row[full..]);
            out[at + rest..at + NR].fill(0.0);
        }
    }
}

/// A block of an `[out, in]` weight `w` (`b = w^T`: column `j` of `b` is row `j` of `w`, of
/// length `k`) into the same sliver layout as [`pack_in_out`]. Whole 8 x 8 squares go through
/// an AVX register transpose (8 row loads, 8 sliver-row stores); the edges element by element.
///
/// # Safety
/// AVX2 is available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn pack_out_in(w: &[f32], k: usize, blk: &WeightBlock, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let WeightBlock { pc, kc, j0, nc } = *blk;
    let kc8 = kc / 8 * 8;
    for jr in (0..nc).step_by(NR) {
        let sliver = &mut out[jr * kc..(jr + NR) * kc];
        for half in (0..NR).step_by(8) {
            let j_base = jr + half;
            let whole = j_base + 8 <= nc;
            if whole {
                let rows: [&[f32]; 8] = std::array::from_fn(|j| {
                    &w[(j0 + j_base + j) * k + pc..(j0 + j_base + j) * k + pc + kc]
                });
                for p8 in (0..kc8).step_by(8) {
                    // SAFETY: each row has kc >= p8 + 8 elements; the sliver row p8 + q has NR
                    // elements from `half`, of which 8 are stored.
                    unsafe {
                        let r: [__m256; 8] =
                            std::array::from_fn(|j| _mm256_loadu_ps(rows[j].as_ptr().add(p8)));
                        let t = transpose8(r);
                        for (q, tq) in t.iter().enumerate() {
                            _mm256_storeu_ps(sliver.as_mut_ptr().add((p8 + q) * NR + half), *tq);
                        }
                    }
                }
                for p in kc8..kc {
                    for (j, row) in rows.iter().enumerate() {
                        sliver[p * NR + half + j] = row[p];
                    }
                }
            } else {
                for p in 0..kc {
                    for j in 0..8 {
                        let col = j_base + j;
                        sliver[p * NR + half + j] = if col < nc {
                            w[(j0 + col) * k + pc + p]
                        } else {
                            0.0
                        };
                    }
                }
            }
        }
    }
}

/// The transpose of the 8 x 8 block whose rows are `r`: element `j` of output `q` is element
/// `q` of `r[j]`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn transpose8(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    // SAFETY: register shuffles only; the caller's function enables AVX.
    unsafe {
        let t0 = _mm256_unpacklo_ps(r[0], r[1]);
        let t1 = _mm256_unpackhi_ps(r[0], r[1]);
        let t2 = _mm256_unpacklo_ps(r[2], r[3]);
        let t3 = _mm256_unpackhi_ps(r[2], r[3]);
        let t4 = _mm256_unpacklo_ps(r[4], r[5]);
        let t5 = _mm256_unpackhi_ps(r[4], r[5]);
        let t6 = _mm256_unpacklo_ps(r[6], r[7]);
        let t7 = _mm256_unpackhi_ps(r[6], r[7]);
        let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
        let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
        let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
        let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
        let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
        let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
        let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
        let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
        [
            _mm256_permute2f128_ps::<0x20>(u0, u4),
            _mm256_permute2f128_ps::<0x20>(u1, u5),
            _mm256_permute2f128_ps::<0x20>(u2, u6),
            _mm256_permute2f128_ps::<0x20>(u3, u7),
            _mm256_permute2f128_ps::<0x31>(u0, u4),
            _mm256_permute2f128_ps::<0x31>(u1, u5),
            _mm256_permute2f128_ps::<0x31>(u2, u6),
            _mm256_permute2f128_ps::<0x31>(u3, u7),
        ]
    }
}

/// Rows `ic..ic + mc`, columns `pc..pc + kc` of `a` (`[m, k]`) into slivers of `MR` rows
/// (`out[sliver * kc * MR + p * MR + r]`), the last sliver zero-padded.
#[inline(always)]
fn pack_a(a: &[f32], k: usize, ic: usize, mc: usize, pc: usize, kc: usize, out: &mut [f32]) {
    for (s, ir) in (0..mc).step_by(MR).enumerate() {
        let mr = MR.min(mc - ir);
        let sliver = &mut out[s * kc * MR..(s + 1) * kc * MR];
        for r in 0..MR {
            if r < mr {
                let row = &a[(ic + ir + r) * k + pc..(ic + ir + r) * k + pc + kc];
                for (p, &v) in row.iter().enumerate() {
                    sliver[p * MR + r] = v;
                }
            } else {
                for p in 0..kc {
                    sliver[p * MR + r] = 0.0;
                }
            }
        }
    }
}

/// The register kernel over one packed block: `c[.. mc, .. nc] += A B` (row stride `ldc`).
///
/// # Safety
/// AVX2 and FMA are available; `c` points to an `mc x nc` block (row stride `ldc`) that this
/// call alone writes; the packed buffers hold `mc` and `nc` rounded up to whole slivers of
/// depth `kc`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn macro_block(
    mc: usize,
    nc: usize,
    kc: usize,
    packed_a: &[f32],
    packed_w: &[f32],
    c: *mut f32,
    ldc: usize,
) {
    let mut edge = [0f32; MR * NR];
    for jr in (0..nc).step_by(NR) {
        let nr = NR.min(nc - jr);
        let w_sliver = &packed_w[jr * kc..(jr + NR) * kc];
        for ir in (0..mc).step_by(MR) {
            let mr = MR.min(mc - ir);
            let a_sliver = &packed_a[ir * kc..(ir + MR) * kc];
            // SAFETY: the tile at (ir, jr) lies inside the block; an edge tile goes through the
            // local `edge` buffer (row stride NR) and only its mr x nr part is added to c.
            unsafe {
                let tile = c.add(ir * ldc + jr);
                if mr == MR && nr == NR {
                    kernel(kc, a_sliver, w_sliver, tile, ldc);
                } else {
                    edge.fill(0.0);
                    kernel(kc, a_sliver, w_sliver, edge.as_mut_ptr(), NR);
                    for r in 0..mr {
                        for j in 0..nr {
                            *tile.add(r * ldc + j) += edge[r * NR + j];
                        }
                    }
                }
            }
        }
    }
}

/// `c[.. MR, .. NR] += sum_p a[p, ..] w[p, ..]` over `kc` steps of the packed slivers, in 12
/// AVX accumulators.
///
/// # Safety
/// AVX2 and FMA are available; `a` and `w` hold `kc * MR` and `kc * NR` elements; `c` points
/// to `MR` rows of `NR` writable f32 with row stride `ldc`.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel(kc: usize, a: &[f32], w: &[f32], c: *mut f32, ldc: usize) {
    use std::arch::x86_64::*;
    debug_assert!(a.len() >= kc * MR && w.len() >= kc * NR);
    let mut acc = [[_mm256_setzero_ps(); 2]; MR];
    // SAFETY: prefetches only hint the cache; the addresses are inside c's tile.
    unsafe {
        for r in 0..MR {
            _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(c.add(r * ldc + NR - 1) as *const i8);
        }
    }
    let mut ap = a.as_ptr();
    let mut wp = w.as_ptr();
    // SAFETY: p < kc, so ap + MR and wp + NR stay inside the slivers (lengths checked above
    // in debug builds, guaranteed by the packing); c's rows are the caller's contract.
    unsafe {
        for _ in 0..kc {
            let w0 = _mm256_loadu_ps(wp);
            let w1 = _mm256_loadu_ps(wp.add(8));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let ar = _mm256_broadcast_ss(&*ap.add(r));
                acc_r[0] = _mm256_fmadd_ps(ar, w0, acc_r[0]);
                acc_r[1] = _mm256_fmadd_ps(ar, w1, acc_r[1]);
            }
            ap = ap.add(MR);
            wp = wp.add(NR);
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let row = c.add(r * ldc);
            _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), acc_r[0]));
            _mm256_storeu_ps(
                row.add(8),
                _mm256_add_ps(_mm256_loadu_ps(row.add(8)), acc_r[1]),
            );
        }
    }
}
