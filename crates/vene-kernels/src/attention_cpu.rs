//! The CPU attention kernels: per (batch, head) block, the scores by one single-threaded
//! `gemm`, scaling folded into it, soft-cap, mask and softmax in one pass over the block while
//! it is in cache, then the values by a second `gemm` written straight into the merged-heads
//! output `[B, T, H * dv]`. Blocks run in parallel (rayon).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape};
use gemm::Parallelism;
use rayon::prelude::*;

use crate::fast::f32_slice;
use crate::softmax::softmax_inplace;
use crate::vmath::{self, multiversion};

/// Sizes of one attention call: q `[b, h, t, d]`, k `[b, h, tk, d]`, v `[b, h, tk, dv]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dims {
    pub(crate) b: usize,
    pub(crate) h: usize,
    pub(crate) t: usize,
    pub(crate) tk: usize,
    pub(crate) d: usize,
    pub(crate) dv: usize,
}

/// A u8 mask `[mb, mh, mt, tk]` (`mb` is 1 or b, `mh` 1 or h, `mt` 1 or t), nonzero where a
/// query may attend a key.
#[derive(Debug)]
pub(crate) struct Mask {
    pub(crate) data: Vec<u8>,
    pub(crate) mb: usize,
    pub(crate) mh: usize,
    pub(crate) mt: usize,
}

impl Mask {
    /// The `[mt, tk]` rows of block (batch `bi`, head `hi`) and the stride between the rows
    /// of consecutive queries (0 when one row serves every query).
    fn block(&self, bi: usize, hi: usize, dims: Dims) -> (&[u8], usize) {
        let bi = if self.mb == 1 { 0 } else { bi };
        let hi = if self.mh == 1 { 0 } else { hi };
        let len = self.mt * dims.tk;
        let start = (bi * self.mh + hi) * len;
        let stride = if self.mt == 1 { 0 } else { dims.tk };
        (&self.data[start..start + len], stride)
    }
}

/// What happens to the scores between the two products.
#[derive(Debug, Clone)]
pub(crate) struct ScoreParams {
    pub(crate) scale: f32,
    pub(crate) softcap: Option<f32>,
    pub(crate) mask: Option<Arc<Mask>>,
}

multiversion! {
    /// Soft-cap, mask (disallowed scores become `f32::MIN`, so a fully masked row is uniform)
    /// and softmax of the `[t, tk]` scores of one block, in place; query `i` reads the mask
    /// at `i * mask_stride`.
    fn finish_scores(
        scores: &mut [f32],
        tk: usize,
        softcap: Option<f32>,
        mask: Option<&[u8]>,
        mask_stride: usize,
    ) {
        for (i, row) in scores.chunks_exact_mut(tk).enumerate() {
            if let Some(cap) = softcap {
                let inv = 1.0 / cap;
                for s in row.iter_mut() {
                    *s = vmath::tanh(*s * inv) * cap;
                }
            }
            if let Some(m) = mask {
                let m = &m[i * mask_stride..i * mask_stride + tk];
                for (s, &a) in row.iter_mut().zip(m) {
                    *s = if a == 0 { f32::MIN } else { *s };
                }
            }
            softmax_inplace(row);
        }
    }
}

/// `dst[m, n] = beta * lhs[m, k] rhs[k, n]` by a single-threaded gemm; each operand given by
/// its pointer and (row, column) strides in elements.
///
/// # Safety
/// Every pointer must be valid for the elements its strides reach for the given sizes, `dst`
/// writable and not aliased by anything else during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn product(
    (m, n, k): (usize, usize, usize),
    dst: (*mut f32, usize),
    lhs: (*const f32, usize, usize),
    rhs: (*const f32, usize, usize),
    beta: f32,
) {
    // SAFETY: the caller guarantees what this function's contract states, which is what
    // gemm needs: valid, non-aliased operands for these sizes and strides.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.0,
            1,
            dst.1 as isize,
            false,
            lhs.0,
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0,
            rhs.2 as isize,
            rhs.1 as isize,
            0.0,
            beta,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// The probabilities of block (bi, hi) into `out` (`t * tk`).
fn probs_block(q: &[f32], k: &[f32], dims: Dims, p: &ScoreParams, idx: usize, out: &mut [f32]) {
    let Dims { h, t, tk, d, .. } = dims;
    let (bi, hi) = (idx / h, idx % h);
    let qb = &q[idx * t * d..(idx + 1) * t * d];
    let kb = &k[idx * tk * d..(idx + 1) * tk * d];
    debug_assert_eq!(out.len(), t * tk);
    // SAFETY: qb is [t, d] row-major, kb is [tk, d] row-major read as its transpose [d, tk]
    // (row stride 1, column stride d), out is [t, tk] row-major and exclusively borrowed.
    unsafe {
        product(
            (t, tk, d),
            (out.as_mut_ptr(), tk),
            (qb.as_ptr(), d, 1),
            (kb.as_ptr(), 1, d),
            p.scale,
        );
    }
    match p.mask.as_ref().map(|m| m.block(bi, hi, dims)) {
        Some((rows, stride)) => finish_scores(out, tk, p.softcap, Some(rows), stride),
        None => finish_scores(out, tk, p.softcap, None, 0),
    }
}

/// A raw output pointer shared by the blocks, which write disjoint elements.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: the blocks of one call write disjoint elements of the output (see `values_block`).
unsafe impl Send for SharedOut {}
// SAFETY: as above.
unsafe impl Sync for SharedOut {}

/// `probs[bi, hi] @ v[bi, hi]` into rows `(bi, i, hi)` of the merged-heads output.
fn values_block(probs: &[f32], v: &[f32], dims: Dims, idx: usize, out: SharedOut) {
    let Dims {
        b, h, t, tk, dv, ..
    } = dims;
    let bi = idx / h;
    let hi = idx % h;
    let vb = &v[idx * tk * dv..(idx + 1) * tk * dv];
    debug_assert!(bi < b && probs.len() == t * tk);
    let offset = (bi * t * h + hi) * dv;
    // SAFETY: probs is [t, tk] and vb [tk, dv], row-major. The destination is element
    // (bi, i, hi, j) of the [b, t, h, dv] output for i < t, j < dv: inside the buffer of
    // b * t * h * dv elements, and written by this block only (distinct (bi, hi) per block).
    unsafe {
        product(
            (t, dv, tk),
            (out.0.add(offset), h * dv),
            (probs.as_ptr(), tk, 1),
            (vb.as_ptr(), dv, 1),
            1.0,
        );
    }
}

/// A fresh output of `n` elements written by `fill(ptr)`; `fill` writes each exactly once.
fn with_output(n: usize, fill: impl FnOnce(SharedOut)) -> Vec<f32> {
    let mut out: Vec<f32> = crate::alloc::output_buffer(n);
    fill(SharedOut(out.as_mut_ptr()));
    // SAFETY: `fill` wrote all `n` elements (every (bi, i, hi, j) of the output once).
    unsafe { out.set_len(n) };
    out
}

/// Checks the storage sizes against `dims` (they were validated on the tensors).
fn sizes_agree(got: &[usize], want: &[usize], op: &str) -> candle_core::Result<()> {
    if got != want {
        candle_core::bail!("{op}: internal size mismatch {got:?} vs {want:?}");
    }
    Ok(())
}

/// `softmax(mask(softcap(scale q k^T))) v`, merged heads, as one op on (q, k, v).
#[derive(Debug, Clone)]
pub(crate) struct AttentionOp {
    pub(crate) dims: Dims,
    pub(crate) scores: ScoreParams,
}

impl CustomOp3 for AttentionOp {
    fn name(&self) -> &'static str {
        "vene-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (q, k, v) = (
            f32_slice(s1, l1, self.name())?,
            f32_slice(s2, l2, self.name())?,
            f32_slice(s3, l3, self.name())?,
        );
        let dims = self.dims;
        let Dims { b, h, t, tk, d, dv } = dims;
        sizes_agree(
            &[q.len(), k.len(), v.len()],
            &[b * h * t * d, b * h * tk * d, b * h * tk * dv],
            self.name(),
        )?;
        let out = with_output(b * t * h * dv, |out| {
            (0..b * h).into_par_iter().for_each_init(
                || vec![0f32; t * tk],
                |scratch, idx| {
                    probs_block(q, k, dims, &self.scores, idx, scratch);
                    values_block(scratch, v, dims, idx, out);
                },
            );
        });
        Ok((CpuStorage::F32(out), Shape::from((b, t, h * dv))))
    }
}

/// The attention probabilities `[b, h, t, tk]` as one op on (q, k).
#[derive(Debug, Clone)]
pub(crate) struct ProbsOp {
    pub(crate) dims: Dims,
    pub(crate) scores: ScoreParams,
}

impl CustomOp2 for ProbsOp {
    fn name(&self) -> &'static str {
        "vene-attention-probs"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (q, k) = (
            f32_slice(s1, l1, self.name())?,
            f32_slice(s2, l2, self.name())?,
        );
        let dims = self.dims;
        let Dims { b, h, t, tk, d, .. } = dims;
        sizes_agree(
            &[q.len(), k.len()],
            &[b * h * t * d, b * h * tk * d],
            self.name(),
        )?;
        let n = b * h * t * tk;
        let mut out: Vec<f32> = crate::alloc::output_buffer(n);
        out.resize(n, 0.0);
        out.par_chunks_mut(t * tk)
            .enumerate()
            .for_each(|(idx, block)| probs_block(q, k, dims, &self.scores, idx, block));
        Ok((CpuStorage::F32(out), Shape::from((b, h, t, tk))))
    }
}

/// `probs @ v` with merged heads `[b, t, h * dv]` as one op on (probs, v).
#[derive(Debug, Clone)]
pub(crate) struct ValuesOp {
    pub(crate) dims: Dims,
}

impl CustomOp2 for ValuesOp {
    fn name(&self) -> &'static str {
        "vene-attention-values"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (p, v) = (
            f32_slice(s1, l1, self.name())?,
            f32_slice(s2, l2, self.name())?,
        );
        let dims = self.dims;
        let Dims {
            b, h, t, tk, dv, ..
        } = dims;
        sizes_agree(
            &[p.len(), v.len()],
            &[b * h * t * tk, b * h * tk * dv],
            self.name(),
        )?;
        let out = with_output(b * t * h * dv, |out| {
            (0..b * h).into_par_iter().for_each(|idx| {
                let pb = &p[idx * t * tk..(idx + 1) * t * tk];
                values_block(pb, v, dims, idx, out);
            });
        });
        Ok((CpuStorage::F32(out), Shape::from((b, t, h * dv))))
    }
}
