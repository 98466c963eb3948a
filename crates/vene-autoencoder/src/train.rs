//! Training an [`AutoencoderLayer`] as a sparse autoencoder on a stream of activations.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use crate::metrics::{explained_variance, l0, DeadLatentTracker};
use crate::train_checkpoint::{
    named_vars, read_layer_checkpoint, write_layer_checkpoint, LayerLoopState,
};
use crate::training::{Adam, AdamParams};
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
    /// Write a checkpoint every this-many steps into `checkpoint_dir` (each replaces the
    /// last); [`resume_train`] continues from it.
    pub checkpoint_every: Option<usize>,
    /// The checkpoint folder of `checkpoint_every`.
    pub checkpoint_dir: Option<PathBuf>,
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
            checkpoint_every: None,
            checkpoint_dir: None,
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
        match (self.checkpoint_every, &self.checkpoint_dir) {
            (Some(0), _) => bad("checkpoint_every must be at least 1".into()),
            (Some(_), None) => bad("checkpoint_every needs checkpoint_dir".into()),
            _ => Ok(()),
        }
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
/// ([`crate::training::Adam`], the same update as `candle_nn::optim::AdamW`, weight decay 0);
/// `b_dec` starts at the first batch's mean; decoder columns are renormalised to unit norm
/// after every step. With [`TrainConfig::checkpoint_every`] a checkpoint is written every that
/// many steps, from which [`resume_train`] continues.
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
    on_progress: F,
) -> Result<TrainProgress>
where
    I: IntoIterator<Item = Result<Tensor>>,
    F: FnMut(&TrainProgress),
{
    cfg.check()?;
    let state = LayerLoopState {
        step: 0,
        opt: new_optimizer(ae, cfg)?,
        tracker: DeadLatentTracker::new(ae.latent_dim(), cfg.dead_window),
    };
    run(ae, batches, cfg, state, on_progress)
}

/// Resumes training `ae` from the checkpoint folder `checkpoint` (written by a [`train`] run
/// with [`TrainConfig::checkpoint_every`]) and returns the last step's progress.
///
/// `ae` must have the checkpoint's shape and dtype; its parameters are replaced by the
/// checkpoint's (nothing changes if the checkpoint does not fit). `batches` is the same
/// replayable source the run started from: the batches the checkpoint had consumed are read
/// and skipped, and training goes on with Adam's moments and step count and the dead-latent
/// counts restored, so that a stopped and resumed run ends with bit for bit the parameters of
/// a run that never stopped. `cfg.total_steps` counts from the start of the first run.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_autoencoder::{resume_train, train, AutoencoderLayer, TrainConfig};
///
/// let dir = tempfile::tempdir().unwrap();
/// let data: Vec<Tensor> = (0..6)
///     .map(|_| Tensor::randn(0f32, 1., (16, 4), &Device::Cpu))
///     .collect::<candle_core::Result<_>>()?;
/// let cfg = TrainConfig {
///     total_steps: Some(6),
///     checkpoint_every: Some(3),
///     checkpoint_dir: Some(dir.path().join("ckpt")),
///     ..Default::default()
/// };
/// let straight = AutoencoderLayer::seeded(4, 8, 0, &Device::Cpu)?;
/// train(&straight, data.clone().into_iter().map(Ok), &cfg, |_| {})?;
/// // a run whose data stops after 3 batches, resumed into a fresh layer
/// let stopped = AutoencoderLayer::seeded(4, 8, 0, &Device::Cpu)?;
/// train(&stopped, data.clone().into_iter().take(3).map(Ok), &cfg, |_| {})?;
/// let resumed = AutoencoderLayer::seeded(4, 8, 1, &Device::Cpu)?;
/// let last = resume_train(&resumed, dir.path().join("ckpt"), data.into_iter().map(Ok), &cfg, |_| {})?;
/// assert_eq!(last.step, 6);
/// for (a, b) in straight.vars().iter().zip(resumed.vars()) {
///     let diff = (a.as_tensor() - b.as_tensor())?.abs()?.max_all()?.to_scalar::<f32>()?;
///     assert_eq!(diff, 0.0);
/// }
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn resume_train<I, F>(
    ae: &AutoencoderLayer,
    checkpoint: impl AsRef<Path>,
    batches: I,
    cfg: &TrainConfig,
    on_progress: F,
) -> Result<TrainProgress>
where
    I: IntoIterator<Item = Result<Tensor>>,
    F: FnMut(&TrainProgress),
{
    cfg.check()?;
    let state = read_layer_checkpoint(
        checkpoint.as_ref(),
        ae,
        new_optimizer(ae, cfg)?,
        cfg.dead_window,
    )?;
    if cfg.total_steps.is_some_and(|t| state.step >= t) {
        return Err(AutoencoderError::InvalidArgument(format!(
            "the checkpoint is at step {}: total_steps {} leaves nothing to train",
            state.step,
            cfg.total_steps.unwrap_or(0)
        )));
    }
    run(ae, batches, cfg, state, on_progress)
}

fn new_optimizer(ae: &AutoencoderLayer, cfg: &TrainConfig) -> Result<Adam> {
    let params = AdamParams {
        lr: cfg.lr_at(0),
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    Adam::new(named_vars(ae), params)
}

/// The training loop of [`train`] and [`resume_train`], from `state` on.
fn run<I, F>(
    ae: &AutoencoderLayer,
    batches: I,
    cfg: &TrainConfig,
    mut state: LayerLoopState,
    mut on_progress: F,
) -> Result<TrainProgress>
where
    I: IntoIterator<Item = Result<Tensor>>,
    F: FnMut(&TrainProgress),
{
    let vars = ae.vars();
    let mut last = None;
    let dtype = ae.dtype();
    let first = state.step;
    for (step, batch) in batches.into_iter().enumerate() {
        if step < first {
            // consumed by the run the checkpoint was taken from
            batch?;
            continue;
        }
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
        state.opt.set_learning_rate(lr);
        let z = ae.core().encode_raw(&x)?;
        let recon = ae.core().decode_raw(&z)?;
        let mse = (&recon - &x)?.sqr()?.sum(1)?.mean(0)?;
        let l1 = z.sum(1)?.mean(0)?;
        let loss = (&mse + l1.affine(cfg.l1_at(step), 0.0)?)?;
        state.opt.backward_step(&loss)?;
        if cfg.normalize_decoder {
            normalize_columns(&vars[2])?;
        }
        let z = z.detach();
        state.tracker.update(&z)?;
        let done = step + 1;
        state.step = done;
        let is_last = cfg.total_steps == Some(done);
        if done % cfg.log_every.max(1) == 0 || is_last || last.is_none() {
            let p = TrainProgress {
                step: done,
                loss: to_f64(&loss)?,
                mse: to_f64(&mse)?,
                l1: to_f64(&l1)?,
                l0: l0(&z)?,
                explained_variance: explained_variance(&x, &recon.detach())?,
                dead_fraction: state.tracker.dead_fraction(),
                lr,
            };
            on_progress(&p);
            last = Some(p);
        } else if let Some(p) = last.as_mut() {
            p.step = done;
        }
        if let (Some(every), Some(dir)) = (cfg.checkpoint_every, &cfg.checkpoint_dir) {
            if done % every == 0 || is_last {
                write_layer_checkpoint(dir, ae, &state)?;
            }
        }
    }
    last.ok_or_else(|| {
        AutoencoderError::InvalidArgument(if first > 0 {
            format!("no training batches after the checkpoint's {first}")
        } else {
            "no training batches".into()
        })
    })
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
