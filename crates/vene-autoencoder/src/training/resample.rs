//! Resampling dead latents of a ReLU SAE (Anthropic, "Towards Monosemanticity"): each dead
//! latent is re-pointed at an input the SAE reconstructs badly.

use candle_core::{DType, Tensor};

use super::init::SeededRng;
use super::sae::TrainingSae;
use crate::Result;

/// Scale of a resampled encoder column relative to the mean norm of the live ones.
const ENCODER_SCALE: f64 = 0.2;

impl TrainingSae {
    /// Re-initialises the latents marked in `dead` from this batch: rows are drawn with
    /// probability proportional to their squared reconstruction error (`y - recon`); the
    /// decoder row becomes the drawn target's direction (unit norm), the encoder column the
    /// drawn input's direction times 0.2 times the mean live encoder-column norm, and the
    /// encoder bias 0. Returns how many were resampled (none when all rows are reconstructed
    /// exactly or nothing is dead).
    pub(crate) fn resample_dead(
        &self,
        dead: &[bool],
        x: &Tensor,
        y: &Tensor,
        recon: &Tensor,
        rng: &mut SeededRng,
    ) -> Result<usize> {
        let dead_idx: Vec<usize> = (0..dead.len()).filter(|&j| dead[j]).collect();
        if dead_idx.is_empty() {
            return Ok(0);
        }
        let loss: Vec<f64> = (y - recon)?
            .sqr()?
            .sum(1)?
            .sqr()?
            .to_dtype(DType::F64)?
            .to_vec1()?;
        let total: f64 = loss.iter().sum();
        if !(total.is_finite() && total > 0.0) {
            return Ok(0);
        }
        let xs: Vec<Vec<f32>> = x.to_dtype(DType::F32)?.to_vec2()?;
        let ys: Vec<Vec<f32>> = y.to_dtype(DType::F32)?.to_vec2()?;
        let w_enc: Vec<Vec<f32>> = self
            .w_enc
            .as_tensor()
            .to_dtype(DType::F32)?
            .t()?
            .to_vec2()?;
        let mut w_dec: Vec<Vec<f32>> = self.w_dec.as_tensor().to_dtype(DType::F32)?.to_vec2()?;
        let mut b_enc: Vec<f32> = self.b_enc.as_tensor().to_dtype(DType::F32)?.to_vec1()?;
        let norm = |v: &[f32]| v.iter().map(|a| a * a).sum::<f32>().sqrt();
        let live: Vec<f32> = (0..dead.len())
            .filter(|&j| !dead[j])
            .map(|j| norm(&w_enc[j]))
            .collect();
        let live_mean = if live.is_empty() {
            1.0
        } else {
            live.iter().sum::<f32>() / live.len() as f32
        };
        let mut w_enc = w_enc;
        for &j in &dead_idx {
            let mut u = rng.uniform() * total;
            let mut row = loss.len() - 1;
            for (i, l) in loss.iter().enumerate() {
                if u < *l {
                    row = i;
                    break;
                }
                u -= l;
            }
            let ny = norm(&ys[row]).max(1e-12);
            w_dec[j] = ys[row].iter().map(|v| v / ny).collect();
            let nx = norm(&xs[row]).max(1e-12);
            let s = ENCODER_SCALE as f32 * live_mean / nx;
            w_enc[j] = xs[row].iter().map(|v| v * s).collect();
            b_enc[j] = 0.0;
        }
        let dev = self.w_enc.device();
        let dtype = self.dtype();
        let flat = |m: Vec<Vec<f32>>, r: usize, c: usize| -> Result<Tensor> {
            let v: Vec<f32> = m.into_iter().flatten().collect();
            Ok(Tensor::from_vec(v, (r, c), dev)?.to_dtype(dtype)?)
        };
        let (l, di, dout) = (self.latent_dim, self.input_dim, self.output_dim);
        self.w_enc.set(&flat(w_enc, l, di)?.t()?.contiguous()?)?;
        self.w_dec.set(&flat(w_dec, l, dout)?)?;
        self.b_enc
            .set(&Tensor::from_vec(b_enc, l, dev)?.to_dtype(dtype)?)?;
        Ok(dead_idx.len())
    }
}
