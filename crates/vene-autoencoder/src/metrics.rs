//! SAE quality metrics as plain functions over tensors (computed in f32 or wider).

use candle_core::{DType, Tensor};

use crate::{AutoencoderError, Result};

fn same_shape(a: &Tensor, b: &Tensor) -> Result<()> {
    if a.dims() == b.dims() {
        Ok(())
    } else {
        Err(AutoencoderError::InvalidArgument(format!(
            "shapes differ: {:?} vs {:?}",
            a.dims(),
            b.dims()
        )))
    }
}

fn scalar(t: Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Mean number of non-zero latents per row of `z` `[..., L]`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let z = Tensor::new(&[[0f32, 1., 2.], [0., 0., 3.]], &Device::Cpu)?;
/// assert_eq!(vene_autoencoder::metrics::l0(&z)?, 1.5);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn l0(z: &Tensor) -> Result<f64> {
    let width = *z.dims().last().unwrap_or(&1);
    let rows = (z.elem_count() / width.max(1)).max(1);
    let nz = z.ne(0.0)?.to_dtype(DType::F64)?.sum_all()?;
    Ok(scalar(nz)? / rows as f64)
}

/// Mean squared error over all elements.
pub fn mse(x: &Tensor, recon: &Tensor) -> Result<f64> {
    same_shape(x, recon)?;
    let d = (x.to_dtype(DType::F32)? - recon.to_dtype(DType::F32)?)?;
    scalar(d.sqr()?.mean_all()?)
}

/// Explained variance `1 - sum((x - recon)^2) / sum((x - mean(x))^2)`, the mean taken over rows
/// (per feature) of `x` `[..., d]`.
pub fn explained_variance(x: &Tensor, recon: &Tensor) -> Result<f64> {
    same_shape(x, recon)?;
    let width = *x.dims().last().unwrap_or(&1);
    let rows = x.elem_count() / width.max(1);
    let x2 = x.to_dtype(DType::F32)?.reshape((rows, width))?;
    let r2 = recon.to_dtype(DType::F32)?.reshape((rows, width))?;
    let err = scalar((&x2 - &r2)?.sqr()?.sum_all()?)?;
    let mean = x2.mean_keepdim(0)?;
    let var = scalar(x2.broadcast_sub(&mean)?.sqr()?.sum_all()?)?;
    if var == 0.0 {
        return Ok(if err == 0.0 { 1.0 } else { f64::NEG_INFINITY });
    }
    Ok(1.0 - err / var)
}

/// Fraction of latents that never fire (are zero) in any row of `z` `[..., L]`.
pub fn dead_fraction(z: &Tensor) -> Result<f64> {
    let width = *z.dims().last().unwrap_or(&1);
    let rows = z.elem_count() / width.max(1);
    let fired = z
        .reshape((rows, width))?
        .ne(0.0)?
        .to_dtype(DType::F32)?
        .sum(0)?
        .to_vec1::<f32>()?;
    let dead = fired.iter().filter(|&&c| c == 0.0).count();
    Ok(dead as f64 / width.max(1) as f64)
}

/// Tracks, per latent, how many steps ago it last fired, to count dead latents over a window.
#[derive(Debug, Clone)]
pub struct DeadLatentTracker {
    since_fired: Vec<u64>,
    window: u64,
}

impl DeadLatentTracker {
    /// A tracker for `latent_dim` latents; a latent is dead once it has not fired for `window`
    /// steps.
    pub fn new(latent_dim: usize, window: u64) -> Self {
        Self {
            since_fired: vec![0; latent_dim],
            window,
        }
    }

    /// A tracker resuming from saved counts ([`DeadLatentTracker::steps_since_fired`]).
    pub fn from_counts(steps_since_fired: Vec<u64>, window: u64) -> Self {
        Self {
            since_fired: steps_since_fired,
            window,
        }
    }

    /// For each latent, the steps since it last fired (for a checkpoint).
    pub fn steps_since_fired(&self) -> &[u64] {
        &self.since_fired
    }

    /// Records one step's latents `[..., L]`.
    pub fn update(&mut self, z: &Tensor) -> Result<()> {
        let width = self.since_fired.len();
        let rows = z.elem_count() / width.max(1);
        let fired = z
            .reshape((rows, width))?
            .ne(0.0)?
            .to_dtype(DType::F32)?
            .sum(0)?
            .to_vec1::<f32>()?;
        for (s, f) in self.since_fired.iter_mut().zip(fired) {
            *s = if f > 0.0 { 0 } else { s.saturating_add(1) };
        }
        Ok(())
    }

    /// Restarts the count of the latents marked in `mask` (e.g. after resampling them).
    pub fn revive(&mut self, mask: &[bool]) {
        for (s, &m) in self.since_fired.iter_mut().zip(mask) {
            if m {
                *s = 0;
            }
        }
    }

    /// Latents that have not fired in the last `window` steps.
    pub fn dead_mask(&self) -> Vec<bool> {
        self.since_fired.iter().map(|&s| s >= self.window).collect()
    }

    /// Fraction of dead latents.
    pub fn dead_fraction(&self) -> f64 {
        let n = self.since_fired.len().max(1);
        self.dead_mask().iter().filter(|&&d| d).count() as f64 / n as f64
    }
}
