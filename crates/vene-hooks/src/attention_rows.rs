//! Gather/scatter of attention-probability rows: the units of `attention_weight`.
//!
//! The model passes attention probabilities as `[batch, heads, query, key]`. One unit is the
//! row of probabilities of one (head, query position) over every key position. As in pyvene,
//! the locations of unit `pos` (and `h`) index dimension 1, the heads (every query position
//! of each head is taken); unit `h.pos` takes heads and query positions.

use candle_core::Tensor;

use crate::units::check_rows;
use crate::{HeadPositions, HookError, Result};

fn dims4(x: &Tensor) -> Result<(usize, usize, usize, usize)> {
    x.dims4().map_err(|_| HookError::Shape {
        what: "attention probabilities".to_string(),
        expected: "[batch, heads, query, key]".to_string(),
        got: x.dims().to_vec(),
    })
}

/// Flat row indices into `[batch * heads * query, key]` and the number of rows per example.
fn flat_rows(
    loc: &HeadPositions,
    batch: usize,
    n_heads: usize,
    n_query: usize,
) -> Result<(Vec<u32>, usize)> {
    let nh = check_rows("heads", &loc.heads, batch)?;
    let nq = check_rows("query positions", &loc.positions, batch)?;
    let mut flat = Vec::with_capacity(batch * nh * nq);
    for example in 0..batch {
        for &head in &loc.heads[example] {
            if head >= n_heads {
                return Err(HookError::HeadOutOfRange {
                    example,
                    head,
                    n_heads,
                });
            }
            for &position in &loc.positions[example] {
                if position >= n_query {
                    return Err(HookError::PositionOutOfRange {
                        example,
                        position,
                        len: n_query,
                    });
                }
                flat.push(((example * n_heads + head) * n_query + position) as u32);
            }
        }
    }
    Ok((flat, nh * nq))
}

/// The rows of `probs` `[batch, heads, query, key]` at the (head, query position) pairs of
/// `loc`, heads outer: `[batch, n_heads_sel * n_queries_sel, key]`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_hooks::{gather_attention_rows, HeadPositions};
/// // batch 1, 2 heads, 2 queries, 2 keys: values 0..8
/// let p = Tensor::arange(0f32, 8., &Device::Cpu)?.reshape((1, 2, 2, 2))?;
/// let loc = HeadPositions { heads: vec![vec![1]], positions: vec![vec![0, 1]] };
/// let rows = gather_attention_rows(&p, &loc)?;
/// assert_eq!(rows.to_vec3::<f32>()?, vec![vec![vec![4., 5.], vec![6., 7.]]]);
/// let bad = HeadPositions { heads: vec![vec![2]], positions: vec![vec![0]] };
/// assert!(gather_attention_rows(&p, &bad).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gather_attention_rows(probs: &Tensor, loc: &HeadPositions) -> Result<Tensor> {
    let (b, h, q, k) = dims4(probs)?;
    let (flat, n) = flat_rows(loc, b, h, q)?;
    let idx = Tensor::from_vec(flat, b * n, probs.device())?;
    Ok(probs
        .contiguous()?
        .reshape((b * h * q, k))?
        .index_select(&idx, 0)?
        .reshape((b, n, k))?)
}

/// Writes `rows` `[batch, n_units, key]` at the (head, query position) pairs of `loc` in
/// `probs` `[batch, heads, query, key]`; returns the new tensor (`probs` is left as it was).
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_hooks::{scatter_attention_rows, HeadPositions};
/// let p = Tensor::zeros((1, 2, 2, 2), DType::F32, &Device::Cpu)?;
/// let loc = HeadPositions { heads: vec![vec![0]], positions: vec![vec![1]] };
/// let rows = Tensor::new(&[[[0.25f32, 0.75]]], &Device::Cpu)?;
/// let out = scatter_attention_rows(&p, &loc, &rows)?;
/// assert_eq!(out.get(0)?.get(0)?.get(1)?.to_vec1::<f32>()?, vec![0.25, 0.75]);
/// assert_eq!(out.sum_all()?.to_scalar::<f32>()?, 1.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn scatter_attention_rows(
    probs: &Tensor,
    loc: &HeadPositions,
    rows: &Tensor,
) -> Result<Tensor> {
    let (b, h, q, k) = dims4(probs)?;
    let (flat, n) = flat_rows(loc, b, h, q)?;
    let expected = [b, n, k];
    if rows.dims() != expected {
        return Err(HookError::Shape {
            what: "attention rows to scatter".to_string(),
            expected: format!("{expected:?}"),
            got: rows.dims().to_vec(),
        });
    }
    let idx = Tensor::from_vec(flat, (b * n, 1), probs.device())?
        .broadcast_as((b * n, k))?
        .contiguous()?;
    let rows = rows
        .to_dtype(probs.dtype())?
        .reshape((b * n, k))?
        .contiguous()?;
    Ok(probs
        .contiguous()?
        .reshape((b * h * q, k))?
        .scatter(&idx, &rows, 0)?
        .reshape((b, h, q, k))?)
}
