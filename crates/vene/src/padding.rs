//! Token sequences of different lengths as one batch: right-padded ids and their mask.

use candle_core::{Device, Tensor};

use crate::Result;

/// Sequences padded on the right to the longest: what one forward pass of a batch takes.
#[derive(Debug, Clone)]
pub struct PaddedBatch {
    /// The ids `[B, T]`, padded with 0.
    pub ids: Tensor,
    /// The 0/1 attention mask `[B, T]`, or `None` when no sequence is padded.
    pub mask: Option<Tensor>,
    /// The mask, flat (`B * T`, row by row): 1 at real tokens, 0 at padding.
    pub real: Vec<u32>,
}

impl PaddedBatch {
    /// Pads `batch` on the right (with id 0) to its longest sequence, on `device`. With a
    /// causal model, right padding leaves the real positions' activations as they are alone.
    ///
    /// ```
    /// use candle_core::Device;
    /// let b = vene::PaddedBatch::new(&[vec![5, 6, 7], vec![8]], &Device::Cpu)?;
    /// assert_eq!(b.ids.to_vec2::<u32>()?, [[5, 6, 7], [8, 0, 0]]);
    /// assert_eq!(b.real, [1, 1, 1, 1, 0, 0]);
    /// assert_eq!(b.real_rows(), [0, 1, 2, 3]);
    /// assert!(b.mask.is_some());
    /// assert!(vene::PaddedBatch::new(&[vec![1, 2]], &Device::Cpu)?.mask.is_none());
    /// # Ok::<(), vene::VeneError>(())
    /// ```
    pub fn new(batch: &[Vec<u32>], device: &Device) -> Result<Self> {
        let t = batch.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch.len() * t);
        let mut real = Vec::with_capacity(batch.len() * t);
        for s in batch {
            ids.extend(s.iter().copied().chain(std::iter::repeat_n(0, t - s.len())));
            real.extend((0..t).map(|i| u32::from(i < s.len())));
        }
        let ids_t = Tensor::from_vec(ids, (batch.len(), t), device)?;
        let padded = batch.iter().any(|s| s.len() < t);
        let mask = if padded {
            Some(Tensor::from_vec(real.clone(), (batch.len(), t), device)?)
        } else {
            None
        };
        Ok(Self {
            ids: ids_t,
            mask,
            real,
        })
    }

    /// The flat indices (into `B * T`) of the real tokens, in order.
    pub fn real_rows(&self) -> Vec<u32> {
        (0..self.real.len() as u32)
            .filter(|&i| self.real[i as usize] == 1)
            .collect()
    }
}
