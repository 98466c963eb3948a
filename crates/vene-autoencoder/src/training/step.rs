//! [`SaeTrainer`]: one training step at a time, the step [`super::train_sae`] runs for each
//! batch.

use candle_core::Tensor;

use super::checkpoint::LoopState;
use super::config::{BDecInit, SaeTrainConfig};
use super::init::{geometric_median, SeededRng};
use super::losses::{LossContext, StepLoss};
use super::sae::TrainingSae;
use super::trainer::{new_optimizer, prepare};
use crate::metrics::DeadLatentTracker;
use crate::{AutoencoderError, Result};

/// What one step leaves for the loop that logs it.
pub(crate) struct StepOutcome {
    /// The loss and what is logged of it.
    pub out: StepLoss,
    /// The (scaled) target of the step, for the explained variance.
    pub y: Tensor,
    /// The learning rate used.
    pub lr: f64,
}

/// Checks that `cfg` trains `sae` (valid hyperparameters for its width, same architecture).
pub(crate) fn check_config(sae: &TrainingSae, cfg: &SaeTrainConfig) -> Result<()> {
    cfg.check(sae.latent_dim())?;
    if cfg.architecture != *sae.architecture() {
        return Err(AutoencoderError::InvalidArgument(format!(
            "the config trains {:?} but the SAE was built as {:?}",
            cfg.architecture,
            sae.architecture()
        )));
    }
    Ok(())
}

/// A fresh loop state: step 0, Adam's moments zero, no latent dead yet.
pub(crate) fn fresh_state(sae: &TrainingSae, cfg: &SaeTrainConfig) -> Result<LoopState> {
    Ok(LoopState {
        step: 0,
        opt: new_optimizer(sae, cfg, cfg.lr_at(0))?,
        tracker: DeadLatentTracker::new(sae.latent_dim(), cfg.dead_window),
        rng: SeededRng::new(cfg.seed.wrapping_add(1)),
        resampled: 0,
    })
}

/// One step on the prepared (flattened, cast, unscaled) batch `x`, `y`: scaling, the
/// decoder-bias init on step 0, the learning rate of the step, forward and loss, backward and
/// Adam update, decoder rows back to unit norm, dead-latent counts, resampling (never on the
/// last step). `st.step` counts it.
pub(crate) fn train_step(
    sae: &mut TrainingSae,
    cfg: &SaeTrainConfig,
    st: &mut LoopState,
    x: Tensor,
    y: Tensor,
) -> Result<StepOutcome> {
    let step = st.step;
    let x = x.affine(sae.input_scale, 0.0)?;
    let y = y.affine(sae.output_scale, 0.0)?;
    let unit_norm = cfg.unit_norm_decoder();
    if step == 0 {
        let b_dec = match cfg.b_dec_init {
            BDecInit::Zeros => None,
            BDecInit::Mean => Some(y.mean(0)?),
            BDecInit::GeometricMedian { iterations } => {
                Some(geometric_median(&y, iterations)?.to_dtype(sae.dtype())?)
            }
        };
        if let Some(b) = b_dec {
            sae.b_dec.set(&b)?;
        }
        if unit_norm {
            sae.normalize_decoder_rows()?;
        }
    }
    let lr = cfg.lr_at(step);
    st.opt.set_learning_rate(lr);
    let dead = st.tracker.dead_mask();
    let any_dead = dead.iter().any(|&d| d);
    let ctx = LossContext {
        sparsity_scale: cfg.sparsity_scale_at(step),
        dead: any_dead.then_some(dead.as_slice()),
        aux_k: cfg.aux_k,
        aux_k_coefficient: cfg.aux_k_coefficient,
    };
    let out = sae.step_loss(&x, &y, &ctx)?;
    st.opt.backward_step(&out.loss)?;
    if unit_norm {
        sae.normalize_decoder_rows()?;
    }
    st.tracker.update(&out.z)?;
    let done = step + 1;
    let is_last = cfg.total_steps == Some(done);
    // (never on the last step: the new latents would leave untrained)
    if cfg.resample_every.is_some_and(|n| done.is_multiple_of(n)) && !is_last {
        let dead = st.tracker.dead_mask();
        let n = sae.resample_dead(&dead, &x, &y, &out.recon, &mut st.rng)?;
        if n > 0 {
            st.resampled += n;
            st.tracker.revive(&dead);
            // Adam's moments of the old latents would push the new ones back.
            st.opt = new_optimizer(sae, cfg, lr)?;
        }
    }
    st.step = done;
    Ok(StepOutcome { out, y, lr })
}

/// Trains an SAE (or transcoder) one batch at a time: each [`SaeTrainer::step`] is exactly
/// the step [`super::train_sae`] runs for one batch (the same code): scaling by the SAE's
/// factors, on the first step the decoder-bias init, the step's learning rate, forward and
/// loss, backward and Adam update, decoder rows back to unit norm, dead-latent counts and
/// (ReLU) resampling. What `train_sae` adds around it: the normalisation factors estimated
/// from its first batches (a `SaeTrainer` uses the SAE's factors as they are: 1 for a fresh
/// SAE), checkpoints, progress records and stopping at `total_steps`.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_autoencoder::training::{Architecture, SaeTrainConfig, SaeTrainer, TrainingSae};
///
/// let cfg = SaeTrainConfig::new(Architecture::TopK { k: 2 });
/// let sae = TrainingSae::new(&cfg, 4, 8, DType::F32, &Device::Cpu)?;
/// let before = sae.w_dec().to_vec2::<f32>()?;
/// let mut trainer = SaeTrainer::new(sae, &cfg)?;
/// let x = Tensor::randn(0f32, 1., (32, 4), &Device::Cpu)?;
/// let loss = trainer.step(&x)?;
/// assert!(loss.is_finite() && loss > 0.0);
/// assert_eq!(trainer.steps_done(), 1);
/// assert_ne!(trainer.sae().w_dec().to_vec2::<f32>()?, before);
/// let sae = trainer.into_sae();
/// assert_eq!(sae.latent_dim(), 8);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub struct SaeTrainer {
    sae: TrainingSae,
    cfg: SaeTrainConfig,
    state: LoopState,
}

impl std::fmt::Debug for SaeTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaeTrainer")
            .field("sae", &self.sae)
            .field("architecture", &self.cfg.architecture)
            .field("steps_done", &self.state.step)
            .finish_non_exhaustive()
    }
}

impl SaeTrainer {
    /// A trainer of `sae` by `cfg` (which must train `sae`'s architecture), at step 0.
    pub fn new(sae: TrainingSae, cfg: &SaeTrainConfig) -> Result<Self> {
        check_config(&sae, cfg)?;
        let state = fresh_state(&sae, cfg)?;
        Ok(Self {
            sae,
            cfg: cfg.clone(),
            state,
        })
    }

    /// Steps taken.
    pub fn steps_done(&self) -> usize {
        self.state.step
    }

    /// The SAE being trained.
    pub fn sae(&self) -> &TrainingSae {
        &self.sae
    }

    /// The SAE, trained so far.
    pub fn into_sae(self) -> TrainingSae {
        self.sae
    }

    /// One step of the SAE on the activations `x` (`[..., input_dim]`); returns the step's
    /// total loss.
    pub fn step(&mut self, x: &Tensor) -> Result<f64> {
        if self.sae.is_transcoder() {
            return Err(AutoencoderError::InvalidArgument(
                "a transcoder trains on (input, target) pairs: use SaeTrainer::step_transcoder"
                    .into(),
            ));
        }
        self.step_pair(x, None)
    }

    /// One step of the transcoder on `x` (`[..., input_dim]`) and its target `y`
    /// (`[..., output_dim]`, the same rows); returns the step's total loss.
    pub fn step_transcoder(&mut self, x: &Tensor, y: &Tensor) -> Result<f64> {
        if !self.sae.is_transcoder() {
            return Err(AutoencoderError::InvalidArgument(
                "SaeTrainer::step_transcoder needs a transcoder; an SAE steps with \
                 SaeTrainer::step"
                    .into(),
            ));
        }
        self.step_pair(x, Some(y))
    }

    fn step_pair(&mut self, x: &Tensor, y: Option<&Tensor>) -> Result<f64> {
        let sae = &mut self.sae;
        let dims = (sae.input_dim(), sae.output_dim());
        let (x, y) = prepare(dims, (x.clone(), y.cloned()), sae.dtype())?;
        let outcome = train_step(sae, &self.cfg, &mut self.state, x, y)?;
        let loss = outcome.out.loss.to_dtype(candle_core::DType::F64)?;
        Ok(loss.to_scalar::<f64>()?)
    }
}
