//! The CPU kernels: one pass over the rows, multi-threaded (rayon) for large inputs.
//!
//! Out of place, each row is written once: the base row is copied and the selected
//! columns are overwritten (so a small selection costs about one memcpy); a row whose
//! selection is the full `0..width` range is formed element-wise in a single loop.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use crate::combine::{Combine, Elem};
use crate::selection::Selection;

/// Inputs at least this many elements are split over rayon threads.
const PAR_MIN_ELEMS: usize = 1 << 16;
/// Elements per rayon task (rows are never split).
const BLOCK_ELEMS: usize = 1 << 16;

/// Checks that `base`, `source` and `sel` agree, so that the loops below cannot go out of bounds.
fn check<T>(
    base: &[T],
    source: &[T],
    src_stride: usize,
    sel: &Selection,
) -> candle_core::Result<()> {
    let (rows, width) = (sel.rows(), sel.width());
    let src_ok = if src_stride == 0 {
        source.len() == width
    } else {
        src_stride == width && source.len() == rows * width
    };
    if base.len() != rows * width || !src_ok {
        candle_core::bail!(
            "masked swap: internal size mismatch (base {}, source {}, rows {rows}, width {width})",
            base.len(),
            source.len()
        );
    }
    Ok(())
}

/// Applies the selection of one row, in place (`out` already holds the base row).
#[inline]
fn apply_row<T: Elem>(out: &mut [T], src: &[T], list: &[usize], full: bool, op: Combine) {
    if full {
        match op {
            Combine::Replace => out.copy_from_slice(src),
            Combine::Add => out.iter_mut().zip(src).for_each(|(o, &s)| *o = *o + s),
            Combine::Subtract => out.iter_mut().zip(src).for_each(|(o, &s)| *o = *o - s),
        }
    } else {
        for &i in list {
            // `i < width == out.len() == src.len()`: validated by `Selection`.
            out[i] = op.apply(out[i], src[i]);
        }
    }
}

/// Writes one output row (uninitialised) from its base and source rows.
#[inline]
fn fill_row<T: Elem>(
    out: &mut [MaybeUninit<T>],
    base: &[T],
    src: &[T],
    list: &[usize],
    full: bool,
    op: Combine,
) {
    let from = if full && op == Combine::Replace {
        src
    } else {
        base
    };
    // SAFETY: `out` and `from` have the same length (checked by the caller) and do not
    // overlap (`out` is freshly allocated); `MaybeUninit<T>` has the layout of `T`.
    let out: &mut [T] = unsafe {
        std::ptr::copy_nonoverlapping(from.as_ptr(), out.as_mut_ptr().cast::<T>(), from.len());
        std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<T>(), out.len())
    };
    if !(full && op == Combine::Replace) {
        apply_row(out, src, list, full, op);
    }
}

/// Rows per rayon task for a given width.
fn rows_per_block(width: usize) -> usize {
    (BLOCK_ELEMS / width.max(1)).max(1)
}

/// Source row `r` (the whole vector when `src_stride == 0`).
#[inline]
fn src_row<T>(source: &[T], r: usize, src_stride: usize, width: usize) -> &[T] {
    let start = r * src_stride;
    &source[start..start + width]
}

/// `out = base` with the selected latents combined with `source`, as a new buffer.
///
/// `base` is `[rows, width]` row-major; `source` is the same shape (`src_stride == width`)
/// or one `[width]` row broadcast to all rows (`src_stride == 0`).
pub(crate) fn combine_new<T: Elem>(
    base: &[T],
    source: &[T],
    src_stride: usize,
    sel: &Selection,
    op: Combine,
) -> candle_core::Result<Vec<T>> {
    check(base, source, src_stride, sel)?;
    let width = sel.width();
    let n = base.len();
    let mut out: Vec<T> = crate::alloc::output_buffer(n);
    if n == 0 {
        return Ok(out);
    }
    let block = rows_per_block(width) * width;
    let spare = &mut out.spare_capacity_mut()[..n];
    let work = |(b, (o, bs)): (usize, (&mut [MaybeUninit<T>], &[T]))| {
        let r0 = b * (block / width);
        for (j, (o_row, b_row)) in o.chunks_mut(width).zip(bs.chunks(width)).enumerate() {
            let r = r0 + j;
            let (list, full) = sel.row(r);
            fill_row(
                o_row,
                b_row,
                src_row(source, r, src_stride, width),
                list,
                full,
                op,
            );
        }
    };
    if n >= PAR_MIN_ELEMS {
        spare
            .par_chunks_mut(block)
            .zip(base.par_chunks(block))
            .enumerate()
            .for_each(work);
    } else {
        spare
            .chunks_mut(block)
            .zip(base.chunks(block))
            .enumerate()
            .for_each(work);
    }
    // SAFETY: every one of the `n` elements was written by `fill_row` above (the chunks
    // cover `spare[..n]` and each row is fully copied before any column is overwritten).
    unsafe { out.set_len(n) };
    Ok(out)
}

/// The selected latents of `base` combined with `source`, in place.
pub(crate) fn combine_inplace<T: Elem>(
    base: &mut [T],
    source: &[T],
    src_stride: usize,
    sel: &Selection,
    op: Combine,
) -> candle_core::Result<()> {
    check(base, source, src_stride, sel)?;
    let width = sel.width();
    if base.is_empty() {
        return Ok(());
    }
    let block = rows_per_block(width) * width;
    let work = |(b, o): (usize, &mut [T])| {
        let r0 = b * (block / width);
        for (j, o_row) in o.chunks_mut(width).enumerate() {
            let r = r0 + j;
            let (list, full) = sel.row(r);
            apply_row(o_row, src_row(source, r, src_stride, width), list, full, op);
        }
    };
    if sel.selected_elems() >= PAR_MIN_ELEMS {
        base.par_chunks_mut(block).enumerate().for_each(work);
    } else {
        base.chunks_mut(block).enumerate().for_each(work);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_add_subtract_by_hand() {
        let base = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let source = [10.0f32, 20.0, 30.0, 40.0, 50.0, 60.0];
        let sel = Selection::shared(&[2, 0], 2, 3).unwrap();
        let out = combine_new(&base, &source, 3, &sel, Combine::Replace).unwrap();
        assert_eq!(out, [10.0, 2.0, 30.0, 40.0, 5.0, 60.0]);
        let out = combine_new(&base, &source, 3, &sel, Combine::Add).unwrap();
        assert_eq!(out, [11.0, 2.0, 33.0, 44.0, 5.0, 66.0]);
        let out = combine_new(&base, &source[..3], 0, &sel, Combine::Subtract).unwrap();
        assert_eq!(out, [-9.0, 2.0, -27.0, -6.0, 5.0, -24.0]);
        let mut inplace = base;
        combine_inplace(&mut inplace, &source, 3, &sel, Combine::Replace).unwrap();
        assert_eq!(inplace, [10.0, 2.0, 30.0, 40.0, 5.0, 60.0]);
    }

    #[test]
    fn full_selection_and_size_check() {
        let base = [1.0f64, 2.0];
        let source = [7.0f64, 8.0];
        let sel = Selection::shared(&[0, 1], 1, 2).unwrap();
        assert_eq!(
            combine_new(&base, &source, 2, &sel, Combine::Replace).unwrap(),
            [7.0, 8.0]
        );
        assert_eq!(
            combine_new(&base, &source, 2, &sel, Combine::Add).unwrap(),
            [8.0, 10.0]
        );
        assert!(combine_new(&base, &source[..1], 0, &sel, Combine::Add).is_err());
    }
}
