//! Shape checks, source broadcasting, the masked combine of selected dims and the soft blend.

use candle_core::Tensor;
use vene_kernels::Combine;

use crate::selection::Resolved;
use crate::{InterventionError, Result};

/// How selected dims of the base are combined with the source.
pub(crate) type Op = Combine;

/// Checks that `base` is `[B, n_units, width]`; returns `B`.
pub(crate) fn check_base(base: &Tensor, width: usize) -> Result<usize> {
    match base.dims() {
        [b, _, d] if *d == width => Ok(*b),
        [_, _, _] => Err(InterventionError::WidthMismatch {
            what: "base",
            expected: width,
            got: base.dims().to_vec(),
        }),
        got => Err(InterventionError::Shape {
            what: "base",
            expected: format!("[batch, n_units, {width}]"),
            got: got.to_vec(),
        }),
    }
}

/// The source broadcast to `base`'s shape and cast to its dtype: a `[B, n_units, d]` source
/// from a source run, a constant `[d]`, or any shape that broadcasts (e.g. `[B, 1, d]`).
pub(crate) fn prepare_source(base: &Tensor, source: &Tensor) -> Result<Tensor> {
    let source = if source.dtype() == base.dtype() {
        source.clone()
    } else {
        source.to_dtype(base.dtype())?
    };
    if source.dims() == base.dims() {
        return Ok(source);
    }
    let unbroadcastable = || InterventionError::Unbroadcastable {
        source_shape: source.dims().to_vec(),
        base: base.dims().to_vec(),
    };
    if source.dims().last() != base.dims().last() || source.rank() > base.rank() {
        return Err(unbroadcastable());
    }
    source
        .broadcast_as(base.shape())
        .map_err(|_| unbroadcastable())
}

/// The source of a call to an intervention that needs one, broadcast to the base (see
/// [`prepare_source`]); a missing source is an error naming `type_name`.
pub(crate) fn required_source(
    type_name: &'static str,
    base: &Tensor,
    source: Option<&Tensor>,
) -> Result<Tensor> {
    match source {
        Some(s) => prepare_source(base, s),
        None => Err(InterventionError::MissingSource { type_name }),
    }
}

/// The soft blend `(1 - m) * base + m * source`, with the mask `m` (already in their dtype)
/// broadcast over `[B, n, d]`.
pub(crate) fn blend(base: &Tensor, source: &Tensor, m: &Tensor) -> Result<Tensor> {
    Ok((base.broadcast_mul(&(1.0 - m)?)? + source.broadcast_mul(m)?)?)
}

/// `base` `[B, n, d]` with the selected dims combined with `source` (same shape): the fused
/// masked-combine kernel of vene-kernels, one pass, gradients to both inputs.
pub(crate) fn combine(base: &Tensor, source: &Tensor, sel: &Resolved, op: Op) -> Result<Tensor> {
    if op == Combine::Replace && replaces_every_dim(sel, base) {
        // the output is the source: at most one copy (of a broadcast source), no kernel
        return Ok(source.contiguous()?);
    }
    Ok(match sel {
        Resolved::Same(dims) => vene_kernels::masked_combine(base, source, dims, op)?,
        Resolved::PerExample(rows) => vene_kernels::masked_combine_rows(base, source, rows, op)?,
    })
}

/// Whether `sel` selects every dim of `base`'s last axis, in order, for every row.
fn replaces_every_dim(sel: &Resolved, base: &Tensor) -> bool {
    let Some(&width) = base.dims().last() else {
        return false;
    };
    let all = |dims: &[usize]| dims.len() == width && dims.iter().enumerate().all(|(i, &d)| i == d);
    match sel {
        Resolved::Same(dims) => all(dims),
        Resolved::PerExample(rows) => rows.iter().all(|r| all(r)),
    }
}

/// The same as [`combine`] in plain candle ops (a `where` over a broadcast mask); kept to
/// check the kernel against.
#[cfg(test)]
pub(crate) fn combine_composed(
    base: &Tensor,
    source: &Tensor,
    sel: &Resolved,
    op: Op,
) -> Result<Tensor> {
    if sel.is_empty() {
        return Ok(base.clone());
    }
    let width = base.dim(candle_core::D::Minus1)?;
    let replaced = match op {
        Combine::Replace => source.clone(),
        Combine::Add => (base + source)?,
        Combine::Subtract => (base - source)?,
    };
    let mask = sel.mask(width, base.device())?.broadcast_as(base.shape())?;
    Ok(mask.where_cond(&replaced, base)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    #[test]
    fn kernel_and_composition_agree() {
        let dev = Device::Cpu;
        let base = Tensor::arange(0f32, 24., &dev)
            .unwrap()
            .reshape((2, 3, 4))
            .unwrap();
        let source = (base.clone() * -2.0).unwrap();
        let sels = [
            Resolved::Same(vec![]),
            Resolved::Same(vec![3, 0]),
            Resolved::PerExample(vec![vec![1], vec![0, 2, 3]]),
        ];
        for sel in &sels {
            for op in [Combine::Replace, Combine::Add, Combine::Subtract] {
                let a = combine(&base, &source, sel, op).unwrap();
                let b = combine_composed(&base, &source, sel, op).unwrap();
                let (a, b) = (
                    a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                    b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                );
                assert_eq!(a, b, "{sel:?} {op:?}");
            }
        }
    }
}
