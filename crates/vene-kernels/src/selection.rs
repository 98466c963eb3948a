//! Validated latent selections: one shared list, or one list per row / per example.

use crate::error::{KernelError, Result};

/// A validated selection of latent indices for every row of a `[rows, width]` view.
///
/// Stored as compressed lists (`offsets`, `indices`); row `r` uses list `r / rows_per_list`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selection {
    offsets: Vec<usize>,
    indices: Vec<usize>,
    /// Per list: the list is exactly `0..width` in order (a dense, full selection).
    full: Vec<bool>,
    rows_per_list: usize,
    rows: usize,
    width: usize,
}

impl Selection {
    /// One list shared by every row.
    pub(crate) fn shared(dims: &[usize], rows: usize, width: usize) -> Result<Self> {
        Self::build(std::slice::from_ref(&dims), rows.max(1), rows, width)
    }

    /// One list per row (`lists.len() == rows`) or per example of dim 0
    /// (`lists.len() == examples`, each example's `rows / examples` rows share its list).
    pub(crate) fn per_row(
        lists: &[Vec<usize>],
        rows: usize,
        examples: usize,
        width: usize,
    ) -> Result<Self> {
        let n = lists.len();
        let rows_per_list = if n == rows {
            1
        } else if n == examples && n > 0 {
            rows / n
        } else {
            return Err(KernelError::RowCountMismatch {
                lists: n,
                rows,
                examples,
            });
        };
        Self::build(lists, rows_per_list.max(1), rows, width)
    }

    fn build<L: AsRef<[usize]>>(
        lists: &[L],
        rows_per_list: usize,
        rows: usize,
        width: usize,
    ) -> Result<Self> {
        let total: usize = lists.iter().map(|l| l.as_ref().len()).sum();
        let mut offsets = Vec::with_capacity(lists.len() + 1);
        let mut indices = Vec::with_capacity(total);
        let mut full = Vec::with_capacity(lists.len());
        // Bit `i` of `seen` marks index `i` seen in the current list (cleared after it).
        let mut seen = vec![0u64; width.div_ceil(64)];
        offsets.push(0);
        for list in lists {
            let list = list.as_ref();
            let is_full = list.len() == width && list.iter().enumerate().all(|(i, &d)| i == d);
            if !is_full {
                for &index in list {
                    let word = seen
                        .get_mut(index / 64)
                        .filter(|_| index < width)
                        .ok_or(KernelError::IndexOutOfRange { index, width })?;
                    let bit = 1u64 << (index % 64);
                    if *word & bit != 0 {
                        return Err(KernelError::DuplicateIndex { index });
                    }
                    *word |= bit;
                }
                for &index in list {
                    if let Some(word) = seen.get_mut(index / 64) {
                        *word = 0;
                    }
                }
            }
            indices.extend_from_slice(list);
            offsets.push(indices.len());
            full.push(is_full);
        }
        Ok(Self {
            offsets,
            indices,
            full,
            rows_per_list,
            rows,
            width,
        })
    }

    /// The list used by row `row`, and whether it is the full `0..width` range.
    #[inline]
    pub(crate) fn row(&self, row: usize) -> (&[usize], bool) {
        let k = row / self.rows_per_list;
        match (
            self.offsets.get(k),
            self.offsets.get(k + 1),
            self.full.get(k),
        ) {
            (Some(&a), Some(&b), Some(&f)) => (self.indices.get(a..b).unwrap_or(&[]), f),
            _ => (&[], false),
        }
    }

    /// Number of rows this selection was validated for.
    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    /// Width of the last dimension this selection was validated for.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    /// A dense `[rows, width]` 0/1 mask (u8), for the reference composition.
    pub(crate) fn dense_mask(&self) -> Vec<u8> {
        let mut mask = vec![0u8; self.rows * self.width];
        for (r, row) in mask.chunks_mut(self.width.max(1)).enumerate() {
            for &i in self.row(r).0 {
                if let Some(m) = row.get_mut(i) {
                    *m = 1;
                }
            }
        }
        mask
    }

    /// Total number of selected elements over all rows.
    pub(crate) fn selected_elems(&self) -> usize {
        (0..self.rows).map(|r| self.row(r).0.len()).sum()
    }

    /// A `[lists, width]` 0/1 mask (u8), one row per list, for the dense CUDA kernel.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn lists_mask(&self) -> Vec<u8> {
        let lists = self.offsets.len().saturating_sub(1);
        let mut mask = vec![0u8; lists * self.width];
        for (k, row) in mask.chunks_mut(self.width.max(1)).enumerate() {
            let (a, b) = (self.offsets[k], self.offsets[k + 1]);
            for &i in self.indices.get(a..b).unwrap_or(&[]) {
                if let Some(m) = row.get_mut(i) {
                    *m = 1;
                }
            }
        }
        mask
    }

    /// Lists as (offsets, indices, rows_per_list), for the CUDA kernels.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn csr(&self) -> (&[usize], &[usize], usize) {
        (&self.offsets, &self.indices, self.rows_per_list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_list_applies_to_every_row() {
        let s = Selection::shared(&[3, 1], 4, 5).unwrap();
        for r in 0..4 {
            assert_eq!(s.row(r), (&[3usize, 1][..], false));
        }
        assert_eq!(s.selected_elems(), 8);
    }

    #[test]
    fn per_example_lists_cover_their_rows() {
        // 2 examples x 3 positions: rows 0..3 use list 0, rows 3..6 use list 1.
        let s = Selection::per_row(&[vec![0], vec![1, 2]], 6, 2, 4).unwrap();
        assert_eq!(s.row(2).0, &[0]);
        assert_eq!(s.row(3).0, &[1, 2]);
        assert_eq!(s.selected_elems(), 3 + 6);
        let m = s.dense_mask();
        assert_eq!(&m[0..4], &[1, 0, 0, 0]);
        assert_eq!(&m[20..24], &[0, 1, 1, 0]);
    }

    #[test]
    fn full_range_is_detected() {
        let s = Selection::shared(&[0, 1, 2], 1, 3).unwrap();
        assert!(s.row(0).1);
        let s = Selection::shared(&[1, 0, 2], 1, 3).unwrap();
        assert!(!s.row(0).1);
    }

    #[test]
    fn bad_selections_are_typed_errors() {
        assert!(matches!(
            Selection::shared(&[5], 1, 5),
            Err(KernelError::IndexOutOfRange { index: 5, width: 5 })
        ));
        assert!(matches!(
            Selection::shared(&[2, 2], 1, 5),
            Err(KernelError::DuplicateIndex { index: 2 })
        ));
        // The same index in two different lists is fine.
        assert!(Selection::per_row(&[vec![2], vec![2]], 2, 2, 5).is_ok());
        assert!(matches!(
            Selection::per_row(&vec![vec![2]; 3], 4, 2, 5),
            Err(KernelError::RowCountMismatch {
                lists: 3,
                rows: 4,
                examples: 2
            })
        ));
    }
}
