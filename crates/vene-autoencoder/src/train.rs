//! Training an [`AutoencoderLayer`] as a sparse autoencoder on a stream of activations.

use candle_core::{DType, Tensor};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use serde::{Deserialize, Serialize};

use crate::metrics::{explained_variance, l0, DeadLatentTracker};
use crate::util::check_width;
use crate::{Autoencoder, AutoencoderError, AutoencoderLayer, Result};

/// How to train. Every field has a default (`TrainConfig::default()`), so a JSON or TOML
/// config only names what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// Peak learning rate (Adam, no weight decay).
    pub lr: f64,
    /// Linear learning-rate warm-up from 0 over this many steps.
    pub lr_warm_up_steps: usize,
    /// Linear decay to `lr_end` over the last this-many steps of `total_steps` (needs it).
    pub lr_decay_steps: usize,
    /// Learning rate at the end of the decay.
    pub lr_end: f64,
    /// Stop after this many steps (else when the batches run out).
    pub total_steps: Option<usize>,
    /// Coefficient of the L1 penalty on the latents (sum over latents, mean over rows).
    pub l1_coefficient: f64,
    /// Linear warm-up of the L1 coefficient from 0 over this many steps.
    pub l1_warm_up_steps: usize,
    /// Adam's beta1.
    pub beta1: f64,
    /// Adam's beta2.
    pub beta2: f64,
    /// Keep every decoder column (latent direction) at unit norm after each step.
    pub normalize_decoder: bool,
    /// Set `b_dec` to the mean of the first batch before the first step.
    pub init_b_dec_to_mean: bool,
    /// A latent counts as dead after this many steps without firing.
    pub dead_window: u64,
    /// Call the progress callback every this-many steps (and on the last).
    pub log_every: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            lr: 4e-4,
            lr_warm_up_steps: 0,
            lr_decay_steps: 0,
            lr_end: 0.0,
            total_steps: None,
            l1_coefficient: 1e-3,
            l1_warm_up_steps: 0,
            beta1: 0.9,
            beta2: 0.999,
            normalize_decoder: true,
            init_b_dec_to_mean: true,
            dead_window: 1000,
            log_every: 100,
        }
    }
}

impl TrainConfig {
    /// The learning rate at `step` (0-based): warm-up, plateau, decay.
    pub fn lr_at(&self, step: usize) -> f64 {
        crate::schedule::LrSchedule {
            lr: self.lr,
            warm_up: self.lr_warm_up_steps,
            decay: self.lr_decay_steps,
            end: self.lr_end,
            total: self.total_steps,
        }
        .at(step)
    }

    /// The L1 coefficient at `step` (0-based), after warm-up.
    pub fn l1_at(&self, step: usize) -> f64 {
        if self.l1_warm_up_steps > 0 && step < self.l1_warm_up_steps {
            self.l1_coefficient * (step + 1) as f64 / self.l1_warm_up_steps as f64
        } else {
            self.l1_coefficient
        }
    }

    fn check(&self) -> Result<()> {
        let bad = |m: String| Err(AutoencoderError::InvalidArgument(m));
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be positive, got {}", self.lr));
        }
        if !(self.l1_coefficient.is_finite() && self.l1_coefficient >= 0.0) {
            return bad(format!(
                "l1_coefficient must be >= 0, got {}",
                self.l1_coefficient
            ));
        }
        if self.lr_decay_steps > 0 && self.total_steps.is_none() {
            return bad("lr_decay_steps needs total_steps".into());
        }
        Ok(())
    }
}

/// What the progress callback gets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainProgress {
    /// Steps done (1-based).
    pub step: usize,
    /// Total loss of this step's batch.
    pub loss: f64,
    /// MSE part (sum over features, mean over rows).
    pub mse: f64,
    /// L1 part, before the coefficient.
    pub l1: f64,
    /// Mean number of active latents per row.
    pub l0: f64,
    /// Explained variance of the batch's reconstruction.
    pub explained_variance: f64,
    /// Fraction of latents dead over the tracking window.
    pub dead_fraction: f64,
    /// Learning rate used.
    pub lr: f64,
}

/// Trains `ae` on `batches` (each `[rows, input_dim]`) and returns the last step's progress.
///
/// Loss: `sum_d (recon - x)^2 + l1 * sum_j z_j`, both averaged over rows; Adam
/// (`candle_nn::optim::AdamW`, weight decay 0); `b_dec` starts at the first batch's mean;
/// decoder columns are renormalised to unit norm after every step.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_autoencoder::{train, AutoencoderLayer, TrainConfig};
///
/// let ae = AutoencoderLayer::new(4, 8, DType::F32, &Device::Cpu)?;
/// let data = Tensor::randn(0f32, 1., (64, 4), &Device::Cpu)?;
/// let cfg = TrainConfig { total_steps: Some(5), lr: 1e-2, ..Default::default() };
/// let last = train(&ae, std::iter::repeat_with(|| Ok(data.clone())), &cfg, |_| {})?;
/// assert_eq!(last.step, 5);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn train<I, F>(
    ae: &AutoencoderLayer,
    batches: I,
    cfg: &TrainConfig,
    mut on_progress: F,
) -> Result<TrainProgress>
where
    I: IntoIterator<Item = Result<Tensor>>,
    F: FnMut(&TrainProgress),
{
    cfg.check()?;
    let vars = ae.vars();
    let params = ParamsAdamW {
        lr: cfg.lr_at(0),
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut opt = AdamW::new(vars.clone(), params)?;
    let mut tracker = DeadLatentTracker::new(ae.latent_dim(), cfg.dead_window);
    let mut last = None;
    let dtype = ae.dtype();
    for (step, batch) in batches.into_iter().enumerate() {
        if cfg.total_steps.is_some_and(|t| step >= t) {
            break;
        }
        let x = batch?;
        check_width(&x, ae.input_dim(), "training batch")?;
        let x = x.reshape(((), ae.input_dim()))?.to_dtype(dtype)?;
        if step == 0 {
            if cfg.init_b_dec_to_mean {
                vars[3].set(&x.mean(0)?)?;
            }
            if cfg.normalize_decoder {
                normalize_columns(&vars[2])?;
            }
        }
        let lr = cfg.lr_at(step);
        opt.set_learning_rate(lr);
        let z = ae.core().encode_raw(&x)?;
        let recon = ae.core().decode_raw(&z)?;
        let mse = (&recon - &x)?.sqr()?.sum(1)?.mean(0)?;
        let l1 = z.sum(1)?.mean(0)?;
        let loss = (&mse + l1.affine(cfg.l1_at(step), 0.0)?)?;
        opt.backward_step(&loss)?;
        if cfg.normalize_decoder {
            normalize_columns(&vars[2])?;
        }
        let z = z.detach();
        tracker.update(&z)?;
        let done = step + 1;
        let is_last = cfg.total_steps == Some(done);
        if done % cfg.log_every.max(1) == 0 || is_last || last.is_none() {
            let p = TrainProgress {
                step: done,
                loss: to_f64(&loss)?,
                mse: to_f64(&mse)?,
                l1: to_f64(&l1)?,
                l0: l0(&z)?,
                explained_variance: explained_variance(&x, &recon.detach())?,
                dead_fraction: tracker.dead_fraction(),
                lr,
            };
            on_progress(&p);
            last = Some(p);
        } else if let Some(p) = last.as_mut() {
            p.step = done;
        }
    }
    last.ok_or_else(|| AutoencoderError::InvalidArgument("no training batches".into()))
}

fn to_f64(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Rescales each column of the decoder weight `[d, L]` to unit norm.
fn normalize_columns(w: &candle_core::Var) -> Result<()> {
    let t = w.as_tensor().detach();
    let norm = t
        .sqr()?
        .sum_keepdim(0)?
        .sqrt()?
        .clamp(1e-12, f64::INFINITY)?;
    w.set(&t.broadcast_div(&norm)?)?;
    Ok(())
}
