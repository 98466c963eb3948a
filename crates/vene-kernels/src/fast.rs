//! What the CPU fast paths share: when they apply, reading f32 storage, and a row-blocked,
//! multi-threaded map into a fresh output buffer.

use std::mem::MaybeUninit;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Tensor};
use rayon::prelude::*;

use crate::dispatch::{kernel_mode, KernelMode};

/// Outputs at least this many elements are computed by several rayon threads.
pub(crate) const PAR_MIN_ELEMS: usize = 1 << 15;
/// Elements per rayon task (rounded down to whole rows, at least one row).
const BLOCK_ELEMS: usize = 1 << 14;

/// Whether the fast path may run on `ts`: kernels not forced off ([`KernelMode::Fallback`]),
/// and every tensor on the CPU, f32, contiguous and not tracked by autograd.
pub(crate) fn fast_path(ts: &[&Tensor]) -> bool {
    kernel_mode() == KernelMode::Auto
        && ts.iter().all(|t| {
            t.device().is_cpu() && t.dtype() == DType::F32 && t.is_contiguous() && !t.track_op()
        })
}

/// The f32 elements of a contiguous CPU storage under `layout`.
pub(crate) fn f32_slice<'a>(
    s: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = s else {
        candle_core::bail!("{op}: expected f32 storage, got {:?}", s.dtype());
    };
    let (a, b) = layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: input must be contiguous")))?;
    Ok(&v[a..b])
}

/// A new buffer of `src.len()` elements written by `fill(src_block, out_block)` over blocks of
/// whole rows of `width` (several threads for large inputs). `fill` must write every element
/// of its output block.
pub(crate) fn map_rows(
    src: &[f32],
    width: usize,
    fill: impl Fn(&[f32], &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let n = src.len();
    let mut out: Vec<f32> = crate::alloc::output_buffer(n);
    if n == 0 || width == 0 {
        return out;
    }
    let block = (BLOCK_ELEMS / width).max(1) * width;
    let spare = &mut out.spare_capacity_mut()[..n];
    if n >= PAR_MIN_ELEMS {
        spare
            .par_chunks_mut(block)
            .zip(src.par_chunks(block))
            .for_each(|(d, s)| fill(s, d));
    } else {
        spare
            .chunks_mut(block)
            .zip(src.chunks(block))
            .for_each(|(d, s)| fill(s, d));
    }
    // SAFETY: the chunks cover `spare[..n]` and `fill` writes every element of each.
    unsafe { out.set_len(n) };
    out
}

/// Asserts (as a candle error) that `n` is a multiple of `width`, so rows are whole.
pub(crate) fn whole_rows(n: usize, width: usize, op: &str) -> candle_core::Result<()> {
    let whole = match n.checked_rem(width) {
        Some(rest) => rest == 0,
        None => n == 0,
    };
    if !whole {
        candle_core::bail!("{op}: internal size mismatch ({n} elements, rows of {width})");
    }
    Ok(())
}
