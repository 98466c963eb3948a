//! Initialisation: seeded random directions, the decoder bias (mean or geometric median) and
//! the activation-normalisation factor.

use candle_core::{DType, Device, Tensor};

use crate::Result;

/// A small seeded generator (SplitMix64), so that an init is the same on every run (candle's
/// CPU generator cannot be seeded).
#[derive(Debug, Clone)]
pub(crate) struct SeededRng(u64);

impl SeededRng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The generator's state, for a checkpoint.
    pub(crate) fn state(&self) -> u64 {
        self.0
    }

    /// A generator continuing from a [`SeededRng::state`].
    pub(crate) fn from_state(state: u64) -> Self {
        Self(state)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal draw (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// `rows` random directions of width `width`, each of norm `norm`, as `[rows, width]`.
    pub(crate) fn directions(
        &mut self,
        rows: usize,
        width: usize,
        norm: f64,
        dtype: DType,
        device: &Device,
    ) -> Result<Tensor> {
        let mut v = Vec::with_capacity(rows * width);
        for _ in 0..rows {
            let row: Vec<f64> = (0..width).map(|_| self.normal()).collect();
            let n = row.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            v.extend(row.iter().map(|x| (x / n * norm) as f32));
        }
        Ok(Tensor::from_vec(v, (rows, width), device)?.to_dtype(dtype)?)
    }
}

/// The geometric median of the rows of `x` `[n, d]` (the point minimising the sum of
/// Euclidean distances to them), by `iterations` Weiszfeld steps from the mean.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_autoencoder::training::geometric_median;
/// // Three points on a line and one far outlier: the median stays near the cluster.
/// let x = Tensor::new(&[[0f32, 0.], [1., 0.], [2., 0.], [100., 0.]], &Device::Cpu)?;
/// let m = geometric_median(&x, 200)?.to_vec1::<f32>()?;
/// assert!(m[0] > 1.0 && m[0] < 2.0, "{m:?}");
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn geometric_median(x: &Tensor, iterations: usize) -> Result<Tensor> {
    let x = x.to_dtype(DType::F32)?;
    let mut y = x.mean(0)?;
    for _ in 0..iterations {
        let dist = x
            .broadcast_sub(&y)?
            .sqr()?
            .sum(1)?
            .sqrt()?
            .clamp(1e-8, f64::INFINITY)?;
        let w = dist.recip()?;
        let num = x.broadcast_mul(&w.unsqueeze(1)?)?.sum(0)?;
        let next = num.affine(1.0 / w.sum_all()?.to_scalar::<f32>()? as f64, 0.0)?;
        let moved = (&next - &y)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        y = next;
        if moved < 1e-7 {
            break;
        }
    }
    Ok(y)
}

/// SAELens's `expected_average_only_in` factor: `sqrt(d) / mean_row_norm` over `batches`
/// (each `[rows, d]`), so that scaled rows have a mean norm of `sqrt(d)`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_autoencoder::training::norm_scaling_factor;
/// let x = Tensor::new(&[[3f32, 4.], [6., 8.]], &Device::Cpu)?; // norms 5 and 10
/// let s = norm_scaling_factor(&[x])?;
/// assert!((s - 2f64.sqrt() / 7.5).abs() < 1e-9);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn norm_scaling_factor(batches: &[Tensor]) -> Result<f64> {
    let (mut sum, mut rows, mut width) = (0f64, 0usize, 0usize);
    for b in batches {
        let b = b.to_dtype(DType::F64)?;
        width = b.dim(1)?;
        rows += b.dim(0)?;
        sum += b.sqr()?.sum(1)?.sqrt()?.sum_all()?.to_scalar::<f64>()?;
    }
    let mean = sum / rows.max(1) as f64;
    if !(mean.is_finite() && mean > 0.0) {
        return Err(crate::AutoencoderError::InvalidArgument(format!(
            "cannot normalise activations whose mean norm is {mean}"
        )));
    }
    Ok((width as f64).sqrt() / mean)
}
