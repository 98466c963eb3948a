//! The TopK masks of training: 0/1 masks (detached) of the largest entries of each row
//! ([`row_topk_mask`]) or of the whole batch ([`batch_topk_mask`]).
//!
//! Which entries are kept is defined by a stable descending sort (candle's `arg_sort_last_dim`):
//! the largest values, and among equal values at the boundary the lowest indices. On a GPU
//! that sort is run; on the CPU the same entries are found by selection (`select_nth_unstable`
//! finds the k-th largest value, O(n) instead of a full O(n log n) sort of indices), then the
//! entries above it and the first of those equal to it, in index order, are kept.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::Result;

/// The entries of `values` to keep: the `k` largest, among equal values at the boundary the
/// first ones (the top `k` of a stable descending sort). `values` has no NaN; `0 < k <
/// values.len()`. Writes 1 into `mask` at the kept positions (and 0 elsewhere).
fn top_k_into(values: &[f32], k: usize, mask: &mut [f32]) {
    let mut scratch = values.to_vec();
    // no NaN: partial_cmp is total (and -0.0 == 0.0, as in the sort's comparator)
    let (_, kth, _) = scratch.select_nth_unstable_by(k - 1, |a, b| {
        b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal)
    });
    let kth = *kth;
    drop(scratch);
    let above = values.iter().filter(|&&v| v > kth).count();
    let mut equal_left = k - above;
    for (m, &v) in mask.iter_mut().zip(values) {
        *m = if v > kth {
            1.0
        } else if v == kth && equal_left > 0 {
            equal_left -= 1;
            1.0
        } else {
            0.0
        };
    }
}

/// `t` as f32 values on the CPU, or `None` when it holds a NaN (the sort defines those).
fn cpu_values(t: &Tensor) -> Result<Option<Vec<f32>>> {
    let v = t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
    Ok((!v.iter().any(|x| x.is_nan())).then_some(v))
}

/// 0/1 mask (detached) of the `k` largest entries of each row of `t` `[n, L]`.
pub(crate) fn row_topk_mask(t: &Tensor, k: usize) -> Result<Tensor> {
    let t = t.detach();
    let (n, l) = t.dims2()?;
    if k >= l {
        return Ok(t.ones_like()?);
    }
    if k > 0 && matches!(t.device(), Device::Cpu) {
        if let Some(values) = cpu_values(&t)? {
            let mut mask = vec![0f32; n * l];
            mask.par_chunks_mut(l)
                .zip(values.par_chunks(l))
                .for_each(|(m, v)| top_k_into(v, k, m));
            return Ok(Tensor::from_vec(mask, (n, l), t.device())?.to_dtype(t.dtype())?);
        }
    }
    row_topk_mask_sorted(&t, k)
}

/// [`row_topk_mask`] by a sort of each row (any device).
pub(crate) fn row_topk_mask_sorted(t: &Tensor, k: usize) -> Result<Tensor> {
    let t = t.detach().contiguous()?;
    let l = t.dim(1)?;
    if k >= l {
        return Ok(t.ones_like()?);
    }
    let top = t.arg_sort_last_dim(false)?.narrow(1, 0, k)?.contiguous()?;
    let ones = Tensor::ones(top.dims(), t.dtype(), t.device())?;
    Ok(t.zeros_like()?.scatter(&top, &ones, 1)?)
}

/// 0/1 mask (detached) of the `k * rows` largest entries of `t` `[n, L]` over the whole
/// batch, keeping only positive entries.
pub(crate) fn batch_topk_mask(t: &Tensor, k: usize) -> Result<Tensor> {
    let t = t.detach();
    let (n, l) = t.dims2()?;
    let keep = (k * n).min(n * l);
    if keep > 0 && keep < n * l && matches!(t.device(), Device::Cpu) {
        if let Some(values) = cpu_values(&t)? {
            let mut mask = vec![0f32; n * l];
            top_k_into(&values, keep, &mut mask);
            for (m, &v) in mask.iter_mut().zip(&values) {
                if v <= 0.0 {
                    *m = 0.0;
                }
            }
            return Ok(Tensor::from_vec(mask, (n, l), t.device())?.to_dtype(t.dtype())?);
        }
    }
    batch_topk_mask_sorted(&t, k)
}

/// [`batch_topk_mask`] by a sort of the whole batch (any device).
pub(crate) fn batch_topk_mask_sorted(t: &Tensor, k: usize) -> Result<Tensor> {
    let t = t.detach();
    let (n, l) = t.dims2()?;
    let keep = (k * n).min(n * l);
    let flat = t.flatten_all()?.unsqueeze(0)?.contiguous()?;
    let top = flat
        .arg_sort_last_dim(false)?
        .narrow(1, 0, keep)?
        .contiguous()?;
    let ones = Tensor::ones(top.dims(), t.dtype(), t.device())?;
    let mask = flat
        .zeros_like()?
        .scatter(&top, &ones, 1)?
        .reshape((n, l))?;
    let positive = t.gt(0.0)?.to_dtype(t.dtype())?;
    Ok((mask * positive)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_the_largest_entries() {
        let dev = Device::Cpu;
        let t = Tensor::new(&[[0.1f32, 0.9, 0.5], [0.7, -1.0, 0.2]], &dev).unwrap();
        for row in [
            row_topk_mask(&t, 1).unwrap(),
            row_topk_mask_sorted(&t, 1).unwrap(),
        ] {
            let row = row.to_vec2::<f32>().unwrap();
            assert_eq!(row, vec![vec![0.0, 1.0, 0.0], vec![1.0, 0.0, 0.0]]);
        }
        // batch top-2 over 2 rows keeps the 2 * 2 = 4 largest positive entries
        for batch in [
            batch_topk_mask(&t, 2).unwrap(),
            batch_topk_mask_sorted(&t, 2).unwrap(),
        ] {
            let batch = batch.to_vec2::<f32>().unwrap();
            assert_eq!(batch, vec![vec![0.0, 1.0, 1.0], vec![1.0, 0.0, 1.0]]);
        }
    }

    /// Ties at the boundary go to the lowest indices, as in the stable sort: row
    /// `[3, 5, 3, 3, 0]` with k = 3 keeps 5 and the first two 3s.
    #[test]
    fn ties_keep_the_lowest_indices() {
        let dev = Device::Cpu;
        let t = Tensor::new(&[[3f32, 5., 3., 3., 0.], [0., -0., 0., 1., 0.]], &dev).unwrap();
        let row = row_topk_mask(&t, 3).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(
            row,
            vec![vec![1.0, 1.0, 1.0, 0.0, 0.0], vec![1.0, 1.0, 0.0, 1.0, 0.0]]
        );
        // batch top-1 over 2 rows = the 2 largest: 5 and the first 3; nothing else positive
        let batch = batch_topk_mask(&t, 1).unwrap().to_vec2::<f32>().unwrap();
        assert_eq!(batch, vec![vec![1.0, 1.0, 0.0, 0.0, 0.0], vec![0.0; 5]]);
    }

    /// Selection and sort keep the same entries on data full of ties (values on a coarse
    /// grid, many zeros after a ReLU, negative zeros), for several k.
    #[test]
    fn selection_matches_the_sort() {
        let dev = Device::Cpu;
        let (n, l) = (7, 50);
        let values: Vec<f32> = (0..n * l)
            .map(|i| {
                let v = ((i * 37 + 11) % 23) as f32 / 4.0 - 2.0;
                if i % 13 == 0 {
                    -0.0
                } else {
                    v
                }
            })
            .collect();
        let t = Tensor::from_vec(values, (n, l), &dev).unwrap();
        let relu = t.relu().unwrap();
        for src in [&t, &relu] {
            for k in [1, 2, 5, 17, 49] {
                let fast = row_topk_mask(src, k).unwrap().to_vec2::<f32>().unwrap();
                let sorted = row_topk_mask_sorted(src, k)
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap();
                assert_eq!(fast, sorted, "row k = {k}");
                let fast = batch_topk_mask(src, k).unwrap().to_vec2::<f32>().unwrap();
                let sorted = batch_topk_mask_sorted(src, k)
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap();
                assert_eq!(fast, sorted, "batch k = {k}");
                let kept: f32 = fast.iter().flatten().sum();
                assert!(
                    kept > 0.0 && kept <= (k * n) as f32,
                    "batch k = {k}: {kept}"
                );
            }
        }
    }
}
