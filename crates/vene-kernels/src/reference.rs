//! The plain candle composition of the masked swap (mask + `where_cond`): the fallback on
//! devices without a fused kernel (see [`crate::kernel_path`]), and the reference of tests
//! and benches. Same validation and errors as the fused op.

use std::sync::Arc;

use candle_core::{Device, Tensor};

use crate::api::check_pair;
use crate::combine::Combine;
use crate::error::Result;
use crate::selection::Selection;

/// [`crate::masked_swap`] as plain candle ops: a u8 mask, `where_cond`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let base = Tensor::new(&[[1f32, 2.]], &Device::Cpu)?;
/// let source = Tensor::new(&[[3f32, 4.]], &Device::Cpu)?;
/// let a = vene_kernels::masked_swap_reference(&base, &source, &[1])?;
/// let b = vene_kernels::masked_swap(&base, &source, &[1])?;
/// assert_eq!(a.to_vec2::<f32>()?, b.to_vec2::<f32>()?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn masked_swap_reference(base: &Tensor, source: &Tensor, dims: &[usize]) -> Result<Tensor> {
    masked_combine_reference(base, source, dims, Combine::Replace)
}

/// [`crate::masked_combine`] as plain candle ops.
pub fn masked_combine_reference(
    base: &Tensor,
    source: &Tensor,
    dims: &[usize],
    op: Combine,
) -> Result<Tensor> {
    let g = check_pair(base, source)?;
    Selection::shared(dims, 1, g.width)?;
    compose_shared(base, source, dims, g.width, op)
}

/// The composition for a validated shared selection `dims` (each `< width`).
pub(crate) fn compose_shared(
    base: &Tensor,
    source: &Tensor,
    dims: &[usize],
    width: usize,
    op: Combine,
) -> Result<Tensor> {
    let mut mask = vec![0u8; width];
    for &d in dims {
        mask[d] = 1;
    }
    let mask = Tensor::from_vec(mask, width, &Device::Cpu)?
        .to_device(base.device())?
        .broadcast_as(base.shape())?;
    compose(base, source, &mask, op)
}

/// [`crate::masked_combine_rows`] as plain candle ops.
pub fn masked_combine_rows_reference(
    base: &Tensor,
    source: &Tensor,
    dims_per_row: &[Vec<usize>],
    op: Combine,
) -> Result<Tensor> {
    let g = check_pair(base, source)?;
    let sel = Arc::new(Selection::per_row(
        dims_per_row,
        g.rows,
        g.examples,
        g.width,
    )?);
    compose_rows(base, source, &sel, op)
}

/// The composition for a validated per-row selection.
pub(crate) fn compose_rows(
    base: &Tensor,
    source: &Tensor,
    sel: &Selection,
    op: Combine,
) -> Result<Tensor> {
    let mask =
        Tensor::from_vec(sel.dense_mask(), base.shape(), &Device::Cpu)?.to_device(base.device())?;
    compose(base, source, &mask, op)
}

/// The in-place combine without a kernel: the combined values of each run of consecutive
/// selected latents are computed with candle ops and copied into `base` (contiguous, not
/// sharing storage with `source`; `dims` validated).
pub(crate) fn write_runs(
    base: &Tensor,
    source: &Tensor,
    dims: &[usize],
    op: Combine,
) -> Result<()> {
    if base.elem_count() == 0 {
        return Ok(());
    }
    let last = base.rank() - 1;
    let source = source_as_base(base, source)?;
    let mut sorted = dims.to_vec();
    sorted.sort_unstable();
    let mut start = 0;
    while start < sorted.len() {
        let mut end = start + 1;
        while end < sorted.len() && sorted[end] == sorted[end - 1] + 1 {
            end += 1;
        }
        let (offset, len) = (sorted[start], end - start);
        let s = source.narrow(last, offset, len)?;
        let value = match op {
            Combine::Replace => s.contiguous()?,
            Combine::Add => (base.narrow(last, offset, len)? + s)?,
            Combine::Subtract => (base.narrow(last, offset, len)? - s)?,
        };
        base.slice_set(&value, last, offset)?;
        start = end;
    }
    Ok(())
}

/// `source` as `base`'s shape: itself, or its one row (any rank) broadcast to every row.
fn source_as_base(base: &Tensor, source: &Tensor) -> Result<Tensor> {
    if source.shape() == base.shape() {
        return Ok(source.clone());
    }
    let width = source.elem_count();
    Ok(source.reshape(width)?.broadcast_as(base.shape())?)
}

fn compose(base: &Tensor, source: &Tensor, mask: &Tensor, op: Combine) -> Result<Tensor> {
    let source = &source_as_base(base, source)?;
    let value = match op {
        Combine::Replace => source.broadcast_as(base.shape())?,
        Combine::Add => base.broadcast_add(source)?,
        Combine::Subtract => base.broadcast_sub(source)?,
    };
    Ok(mask.where_cond(&value, base)?)
}
