//! The plain candle composition of the masked swap (mask + `where_cond`), for tests and
//! benches. Same validation and errors as the fused op.

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
    let sel = Selection::shared(dims, 1, g.width)?;
    let mask = Tensor::from_vec(sel.dense_mask(), g.width, &Device::Cpu)?
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
    let mask =
        Tensor::from_vec(sel.dense_mask(), base.shape(), &Device::Cpu)?.to_device(base.device())?;
    compose(base, source, &mask, op)
}

fn compose(base: &Tensor, source: &Tensor, mask: &Tensor, op: Combine) -> Result<Tensor> {
    let value = match op {
        Combine::Replace => source.broadcast_as(base.shape())?,
        Combine::Add => base.broadcast_add(source)?,
        Combine::Subtract => base.broadcast_sub(source)?,
    };
    Ok(mask.where_cond(&value, base)?)
}
