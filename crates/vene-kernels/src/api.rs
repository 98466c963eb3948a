//! The public entry points: validation, then the fused custom op.

use std::sync::Arc;

use candle_core::{DType, Tensor};

use crate::combine::Combine;
use crate::dispatch::{kernel_path, KernelPath};
use crate::error::{KernelError, Result};
use crate::op::{apply, MaskedCombineInplace};
use crate::reference;
use crate::selection::Selection;

/// Shape facts of a validated `(base, source)` pair.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Geometry {
    /// Product of all dims of base but the last.
    pub(crate) rows: usize,
    /// Size of the last (latent) dim of base.
    pub(crate) width: usize,
    /// Size of dim 0 of base (the examples of a batch).
    pub(crate) examples: usize,
}

/// Checks dtypes, devices and shapes of `base` and `source`.
///
/// `source` must have the shape of `base`, or hold exactly one row of the last dim
/// (`[L]`, `[1, L]`, ...), which is then broadcast to every row.
pub(crate) fn check_pair(base: &Tensor, source: &Tensor) -> Result<Geometry> {
    if base.dtype() != source.dtype() {
        return Err(KernelError::DTypeMismatch {
            base_dtype: base.dtype(),
            source_dtype: source.dtype(),
        });
    }
    if !matches!(
        base.dtype(),
        DType::F32 | DType::F64 | DType::F16 | DType::BF16
    ) {
        return Err(KernelError::UnsupportedDType(base.dtype()));
    }
    if !base.device().same_device(source.device()) {
        return Err(KernelError::DeviceMismatch);
    }
    let dims = base.dims();
    let (&width, leading) = dims.split_last().ok_or(KernelError::ScalarInput)?;
    let rows: usize = leading.iter().product();
    let examples = if leading.is_empty() { 1 } else { dims[0] };
    let one_row = source.dims().last() == Some(&width) && source.elem_count() == width;
    if source.shape() != base.shape() && !one_row {
        return Err(KernelError::ShapeMismatch {
            base_shape: base.shape().clone(),
            source_shape: source.shape().clone(),
        });
    }
    Ok(Geometry {
        rows,
        width,
        examples,
    })
}

/// The interchange: `out[.., i] = source[.., i]` for every `i` in `dims`, `base` elsewhere.
///
/// `base` is `[.., L]` (any leading shape); `source` has the same shape or is one row
/// `[L]` broadcast to every row (a constant vector). Strided inputs are copied to a
/// contiguous layout first. Supports f32, f64, f16, bf16; gradients flow to both inputs.
/// Runs the fused kernel where the device has one and the candle composition elsewhere
/// (same values; see [`crate::kernel_path`]).
///
/// # Errors
/// [`KernelError::ShapeMismatch`], [`KernelError::IndexOutOfRange`] (an index `>= L`),
/// [`KernelError::DuplicateIndex`], [`KernelError::DTypeMismatch`], and the others of
/// [`KernelError`].
///
/// ```
/// use candle_core::{Device, Tensor};
/// let base = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &Device::Cpu)?;
/// let source = Tensor::new(&[[10f32, 20., 30.], [40., 50., 60.]], &Device::Cpu)?;
/// let out = vene_kernels::masked_swap(&base, &source, &[2, 0])?;
/// assert_eq!(out.to_vec2::<f32>()?, [[10., 2., 30.], [40., 5., 60.]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn masked_swap(base: &Tensor, source: &Tensor, dims: &[usize]) -> Result<Tensor> {
    masked_combine(base, source, dims, Combine::Replace)
}

/// Like [`masked_swap`], with the selected latents formed by `op` (replace, add, subtract).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_kernels::{masked_combine, Combine};
/// let base = Tensor::new(&[[1f32, 2., 3.]], &Device::Cpu)?;
/// let steer = Tensor::new(&[10f32, 20., 30.], &Device::Cpu)?; // broadcast to every row
/// let out = masked_combine(&base, &steer, &[1], Combine::Add)?;
/// assert_eq!(out.to_vec2::<f32>()?, [[1., 22., 3.]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn masked_combine(
    base: &Tensor,
    source: &Tensor,
    dims: &[usize],
    op: Combine,
) -> Result<Tensor> {
    let g = check_pair(base, source)?;
    let sel = Arc::new(Selection::shared(dims, g.rows, g.width)?);
    match kernel_path(base.device()) {
        KernelPath::Fused => Ok(apply(base, source, &sel, op)?),
        KernelPath::Fallback => reference::compose_shared(base, source, dims, g.width, op),
    }
}

/// Like [`masked_combine`] with one index list per row, for per-example subspaces.
///
/// Rows are the `[rows, L]` view of `base` (rows = product of all dims but the last).
/// `dims_per_row` holds either one list per row (`rows` lists) or one list per example
/// of dim 0 (`base.dim(0)` lists; all rows of example `b` use list `b`). Lists may differ
/// in length; an empty list leaves its rows unchanged.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_kernels::{masked_combine_rows, Combine};
/// let base = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let source = Tensor::ones((2, 3), candle_core::DType::F32, &Device::Cpu)?;
/// let out = masked_combine_rows(&base, &source, &[vec![0], vec![1, 2]], Combine::Replace)?;
/// assert_eq!(out.to_vec2::<f32>()?, [[1., 0., 0.], [0., 1., 1.]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn masked_combine_rows(
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
    match kernel_path(base.device()) {
        KernelPath::Fused => Ok(apply(base, source, &sel, op)?),
        KernelPath::Fallback => reference::compose_rows(base, source, &sel, op),
    }
}

/// [`masked_swap`] written into `base`'s own storage (no new tensor, no autograd).
///
/// `base` must be contiguous ([`KernelError::NotContiguous`] otherwise) and must not share
/// storage with `source`. Every tensor sharing `base`'s storage (clones, views) sees the
/// change: use this only where the caller owns the base latents.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let base = Tensor::new(&[[1f32, 2., 3.]], &Device::Cpu)?;
/// let source = Tensor::new(&[[7f32, 8., 9.]], &Device::Cpu)?;
/// vene_kernels::masked_swap_inplace(&base, &source, &[1])?;
/// assert_eq!(base.to_vec2::<f32>()?, [[1., 8., 3.]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn masked_swap_inplace(base: &Tensor, source: &Tensor, dims: &[usize]) -> Result<()> {
    masked_combine_inplace(base, source, dims, Combine::Replace)
}

/// [`masked_combine`] written into `base`'s storage; see [`masked_swap_inplace`].
///
/// Without a fused kernel for the device, the combined values are computed with the candle
/// composition and copied into `base` one run of consecutive selected latents at a time.
pub fn masked_combine_inplace(
    base: &Tensor,
    source: &Tensor,
    dims: &[usize],
    op: Combine,
) -> Result<()> {
    let g = check_pair(base, source)?;
    if !base.is_contiguous() {
        return Err(KernelError::NotContiguous);
    }
    let sel = Arc::new(Selection::shared(dims, g.rows, g.width)?);
    if shares_storage(base, source) {
        return Err(KernelError::Candle(candle_core::Error::Msg(
            "in-place masked swap: base and source share their storage".into(),
        )));
    }
    let source = source.contiguous()?;
    match kernel_path(base.device()) {
        KernelPath::Fused => base.inplace_op2(&source, &MaskedCombineInplace { sel, op })?,
        KernelPath::Fallback => reference::write_runs(base, &source, dims, op)?,
    }
    Ok(())
}

/// Whether two tensors are views of one storage (candle's own check is private).
fn shares_storage(a: &Tensor, b: &Tensor) -> bool {
    let (sa, _) = a.storage_and_layout();
    let (sb, _) = b.storage_and_layout();
    std::ptr::eq(&*sa, &*sb)
}
