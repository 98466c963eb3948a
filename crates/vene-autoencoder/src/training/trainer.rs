//! The training loop shared by every architecture.

use std::io::Write;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Serialize;

use super::adam::{Adam, AdamParams};
use super::checkpoint::{
    checkpoint_dir, read_checkpoint, truncate_metrics, write_checkpoint, LoopState,
};
use super::config::SaeTrainConfig;
use super::init::norm_scaling_factor;
use super::sae::TrainingSae;
use super::step::{check_config, fresh_state, train_step, StepOutcome};
use crate::metrics::{explained_variance, l0};
use crate::util::check_width;
use crate::{AutoencoderError, Result, TrainProgress};

/// What the progress callback of [`train_sae`] gets.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SaeTrainProgress {
    /// Steps done (1-based).
    pub step: usize,
    /// Total loss of this step's batch.
    pub loss: f64,
    /// Reconstruction error (sum over features, mean over rows), in the training units.
    pub mse: f64,
    /// The sparsity penalty before its coefficient: L1 (ReLU, Gated's gate) or L0 (JumpReLU);
    /// 0 for the TopK kinds.
    pub sparsity: f64,
    /// The auxiliary losses after their coefficients: AuxK, Gated's gate reconstruction,
    /// Matryoshka's prefix reconstructions.
    pub aux: f64,
    /// Mean number of active latents per row.
    pub l0: f64,
    /// Explained variance of the batch's reconstruction.
    pub explained_variance: f64,
    /// Fraction of latents dead over the tracking window.
    pub dead_fraction: f64,
    /// Learning rate used.
    pub lr: f64,
    /// Dead latents resampled so far (ReLU with resampling).
    pub resampled: usize,
}

impl From<&SaeTrainProgress> for TrainProgress {
    /// The ReLU trainer's record: `l1` holds [`SaeTrainProgress::sparsity`].
    fn from(p: &SaeTrainProgress) -> Self {
        TrainProgress {
            step: p.step,
            loss: p.loss,
            mse: p.mse,
            l1: p.sparsity,
            l0: p.l0,
            explained_variance: p.explained_variance,
            dead_fraction: p.dead_fraction,
            lr: p.lr,
        }
    }
}

/// Trains the SAE `sae` on `batches` of activations (each `[rows, input_dim]`) and returns
/// the last step's progress. `cfg.architecture` must be the one `sae` was built with.
///
/// Before the first step: with `cfg.normalize_activations`, the first
/// `cfg.norm_estimation_batches` batches fix the scaling factor (they are then trained on
/// as usual); `b_dec` starts as `cfg.b_dec_init` of the first (scaled) batch. After every
/// step, decoder rows go back to unit norm when [`SaeTrainConfig::unit_norm_decoder`].
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_autoencoder::training::{train_sae, Architecture, SaeTrainConfig, TrainingSae};
///
/// let mut cfg = SaeTrainConfig::new(Architecture::TopK { k: 2 });
/// cfg.total_steps = Some(5);
/// let mut sae = TrainingSae::new(&cfg, 4, 8, DType::F32, &Device::Cpu)?;
/// let data = Tensor::randn(0f32, 1., (32, 4), &Device::Cpu)?;
/// let last = train_sae(&mut sae, std::iter::repeat_with(|| Ok(data.clone())), &cfg, |_| {})?;
/// assert_eq!(last.step, 5);
/// assert!(last.l0 <= 2.0);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn train_sae<I, F>(
    sae: &mut TrainingSae,
    batches: I,
    cfg: &SaeTrainConfig,
    on_progress: F,
) -> Result<SaeTrainProgress>
where
    I: IntoIterator<Item = Result<Tensor>>,
    F: FnMut(&SaeTrainProgress),
{
    if sae.is_transcoder() {
        return Err(AutoencoderError::InvalidArgument(
            "a transcoder trains on (input, target) pairs: use train_transcoder".into(),
        ));
    }
    run(
        sae,
        batches.into_iter().map(|b| b.map(|x| (x, None))),
        cfg,
        None,
        on_progress,
    )
}

/// Trains the transcoder `sae` on `batches` of `(input [rows, input_dim], target
/// [rows, output_dim])` pairs (activations of two sites for the same tokens); otherwise as
/// [`train_sae`].
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_autoencoder::training::{train_transcoder, Architecture, SaeTrainConfig, TrainingSae};
///
/// let mut cfg = SaeTrainConfig::new(Architecture::relu(1e-3));
/// cfg.total_steps = Some(3);
/// let mut tc = TrainingSae::new_transcoder(&cfg, 4, 6, 8, DType::F32, &Device::Cpu)?;
/// let x = Tensor::randn(0f32, 1., (16, 4), &Device::Cpu)?;
/// let y = Tensor::randn(0f32, 1., (16, 6), &Device::Cpu)?;
/// let last = train_transcoder(&mut tc, std::iter::repeat_with(|| Ok((x.clone(), y.clone()))), &cfg, |_| {})?;
/// assert_eq!(last.step, 3);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn train_transcoder<I, F>(
    sae: &mut TrainingSae,
    batches: I,
    cfg: &SaeTrainConfig,
    on_progress: F,
) -> Result<SaeTrainProgress>
where
    I: IntoIterator<Item = Result<(Tensor, Tensor)>>,
    F: FnMut(&SaeTrainProgress),
{
    if !sae.is_transcoder() {
        return Err(AutoencoderError::InvalidArgument(
            "train_transcoder needs a transcoder (TrainingSae::new_transcoder); an SAE trains \
             with train_sae"
                .into(),
        ));
    }
    run(
        sae,
        batches.into_iter().map(|b| b.map(|(x, y)| (x, Some(y)))),
        cfg,
        None,
        on_progress,
    )
}

pub(crate) type Pair = (Tensor, Option<Tensor>);

/// Checks a batch's widths and row counts, flattens it to rows, casts it to `dtype`.
pub(crate) fn prepare(
    dims: (usize, usize),
    (x, y): Pair,
    dtype: DType,
) -> Result<(Tensor, Tensor)> {
    let (input_dim, output_dim) = dims;
    check_width(&x, input_dim, "training batch")?;
    let x = x.reshape(((), input_dim))?.to_dtype(dtype)?;
    let y = match y {
        None => x.clone(),
        Some(y) => {
            check_width(&y, output_dim, "training target")?;
            let y = y.reshape(((), output_dim))?.to_dtype(dtype)?;
            if y.dim(0)? != x.dim(0)? {
                return Err(AutoencoderError::InvalidArgument(format!(
                    "a training pair has {} input rows but {} target rows",
                    x.dim(0)?,
                    y.dim(0)?
                )));
            }
            y
        }
    };
    if x.dim(0)? == 0 {
        return Err(AutoencoderError::InvalidArgument(
            "an empty training batch".into(),
        ));
    }
    Ok((x, y))
}

fn to_f64(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

pub(crate) fn new_optimizer(sae: &TrainingSae, cfg: &SaeTrainConfig, lr: f64) -> Result<Adam> {
    let params = AdamParams {
        lr,
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    Adam::new(sae.named_vars(), params)
}

/// Resumes training the SAE saved in the checkpoint folder `checkpoint` (written by a run
/// with [`SaeTrainConfig::checkpoint_every`]) and returns it with the last step's progress.
///
/// `batches` is the same replayable source the run started from: the batches the
/// checkpoint had consumed are read and skipped, then training continues exactly where it
/// stopped (parameters, Adam's moments and step count, dead-latent counts, BatchTopK
/// threshold, normalisation factors and RNG state are restored), so that a run stopped and
/// resumed gives bit for bit the parameters of a run that never stopped. `cfg` must train the
/// checkpoint's architecture; its `total_steps` counts from the start of the first run.
/// (One exception to bit-exactness: a ReLU run that was stopped by its own `total_steps` on a
/// resampling step skipped that resampling, as every run does on its last step.)
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_autoencoder::training::{resume_sae_training, train_sae, Architecture, SaeTrainConfig, TrainingSae};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut cfg = SaeTrainConfig::new(Architecture::TopK { k: 2 });
/// cfg.total_steps = Some(6);
/// cfg.checkpoint_every = Some(3);
/// cfg.checkpoint_dir = Some(dir.path().join("ckpt"));
/// let data: Vec<Tensor> = (0..6)
///     .map(|_| Tensor::randn(0f32, 1., (8, 4), &Device::Cpu))
///     .collect::<candle_core::Result<_>>()?;
/// let source = || data.clone().into_iter().map(Ok);
/// let mut sae = TrainingSae::new(&cfg, 4, 8, DType::F32, &Device::Cpu)?;
/// // the source runs out after 3 batches: the run stops with a checkpoint at step 3
/// train_sae(&mut sae, source().take(3), &cfg, |_| {})?;
/// let (resumed, last) = resume_sae_training(dir.path().join("ckpt"), source(), &cfg, &Device::Cpu, |_| {})?;
/// assert_eq!(last.step, 6);
/// assert_eq!(resumed.latent_dim(), 8);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn resume_sae_training<I, F>(
    checkpoint: impl AsRef<Path>,
    batches: I,
    cfg: &SaeTrainConfig,
    device: &Device,
    on_progress: F,
) -> Result<(TrainingSae, SaeTrainProgress)>
where
    I: IntoIterator<Item = Result<Tensor>>,
    F: FnMut(&SaeTrainProgress),
{
    let (mut sae, state) = read_checkpoint(checkpoint.as_ref(), cfg, device)?;
    if sae.is_transcoder() {
        return Err(AutoencoderError::InvalidArgument(
            "the checkpoint holds a transcoder: use resume_transcoder_training".into(),
        ));
    }
    let last = run(
        &mut sae,
        batches.into_iter().map(|b| b.map(|x| (x, None))),
        cfg,
        Some(state),
        on_progress,
    )?;
    Ok((sae, last))
}

/// [`resume_sae_training`] for a transcoder's checkpoint, on `(input, target)` pairs.
pub fn resume_transcoder_training<I, F>(
    checkpoint: impl AsRef<Path>,
    batches: I,
    cfg: &SaeTrainConfig,
    device: &Device,
    on_progress: F,
) -> Result<(TrainingSae, SaeTrainProgress)>
where
    I: IntoIterator<Item = Result<(Tensor, Tensor)>>,
    F: FnMut(&SaeTrainProgress),
{
    let (mut sae, state) = read_checkpoint(checkpoint.as_ref(), cfg, device)?;
    if !sae.is_transcoder() {
        return Err(AutoencoderError::InvalidArgument(
            "the checkpoint holds an SAE, not a transcoder: use resume_sae_training".into(),
        ));
    }
    let last = run(
        &mut sae,
        batches.into_iter().map(|b| b.map(|(x, y)| (x, Some(y)))),
        cfg,
        Some(state),
        on_progress,
    )?;
    Ok((sae, last))
}

/// The JSON-lines metrics file: started anew, or cut back to `resume_step` and appended to.
fn open_metrics(cfg: &SaeTrainConfig, resume_step: Option<usize>) -> Result<Option<std::fs::File>> {
    let Some(path) = &cfg.metrics_path else {
        return Ok(None);
    };
    if let Some(step) = resume_step {
        truncate_metrics(path, step)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true);
    if resume_step.is_some() {
        opts.append(true);
    } else {
        opts.write(true).truncate(true);
    }
    Ok(Some(
        opts.open(path).map_err(|e| AutoencoderError::io(path, e))?,
    ))
}

fn run<I, F>(
    sae: &mut TrainingSae,
    batches: I,
    cfg: &SaeTrainConfig,
    resume: Option<LoopState>,
    mut on_progress: F,
) -> Result<SaeTrainProgress>
where
    I: Iterator<Item = Result<Pair>>,
    F: FnMut(&SaeTrainProgress),
{
    check_config(sae, cfg)?;
    let dtype = sae.dtype();
    let dims = (sae.input_dim(), sae.output_dim());
    let mut batches = batches.peekable();
    let resume_step = resume.as_ref().map(|r| r.step);
    if let Some(consumed) = resume_step {
        // A replayable source: skip what the checkpoint had consumed.
        for i in 0..consumed {
            match batches.next() {
                Some(b) => drop(b?),
                None => {
                    return Err(AutoencoderError::InvalidArgument(format!(
                        "the batch source ended after {i} batches, before the checkpoint's \
                         position ({consumed} batches consumed)"
                    )))
                }
            }
        }
    }
    // The first batches fix the normalisation; they are trained on afterwards.
    let mut head: Vec<(Tensor, Tensor)> = Vec::new();
    if resume.is_some() {
        // the factors come from the checkpoint
    } else if cfg.normalize_activations {
        while head.len() < cfg.norm_estimation_batches {
            match batches.next() {
                Some(b) => head.push(prepare(dims, b?, dtype)?),
                None => break,
            }
        }
        if head.is_empty() {
            return Err(AutoencoderError::InvalidArgument(
                "no training batches".into(),
            ));
        }
        let xs: Vec<Tensor> = head.iter().map(|(x, _)| x.clone()).collect();
        sae.input_scale = norm_scaling_factor(&xs)?;
        sae.output_scale = if sae.is_transcoder() {
            let ys: Vec<Tensor> = head.iter().map(|(_, y)| y.clone()).collect();
            norm_scaling_factor(&ys)?
        } else {
            sae.input_scale
        };
    } else {
        sae.input_scale = 1.0;
        sae.output_scale = 1.0;
    }
    let mut st = match resume {
        Some(s) => s,
        None => fresh_state(sae, cfg)?,
    };
    let start = st.step;
    let ckpt_dir = checkpoint_dir(cfg);
    let mut metrics = open_metrics(cfg, resume_step)?;
    let mut last: Option<SaeTrainProgress> = None;
    let stream = head
        .into_iter()
        .map(Ok)
        .chain(batches.map(|b| b.and_then(|b| prepare(dims, b, dtype))));
    for (i, batch) in stream.enumerate() {
        let step = start + i;
        if cfg.total_steps.is_some_and(|t| step >= t) {
            break;
        }
        let (x, y) = batch?;
        let StepOutcome { out, y, lr } = train_step(sae, cfg, &mut st, x, y)?;
        let done = st.step;
        let is_last = cfg.total_steps == Some(done);
        if let (Some(every), Some(dir)) = (cfg.checkpoint_every, &ckpt_dir) {
            if done % every == 0 {
                write_checkpoint(dir, sae, &st)?;
            }
        }
        let resampled = st.resampled;
        if done % cfg.log_every.max(1) == 0 || is_last || last.is_none() {
            let p = SaeTrainProgress {
                step: done,
                loss: to_f64(&out.loss)?,
                mse: to_f64(&out.mse)?,
                sparsity: to_f64(&out.sparsity)?,
                aux: to_f64(&out.aux)?,
                l0: l0(&out.z)?,
                explained_variance: explained_variance(&y, &out.recon)?,
                dead_fraction: st.tracker.dead_fraction(),
                lr,
                resampled,
            };
            on_progress(&p);
            if let (Some(f), Some(path)) = (metrics.as_mut(), &cfg.metrics_path) {
                let line = serde_json::to_string(&p).map_err(|e| {
                    AutoencoderError::InvalidArgument(format!("metrics record: {e}"))
                })?;
                writeln!(f, "{line}")
                    .and_then(|_| f.flush())
                    .map_err(|e| AutoencoderError::io(path, e))?;
            }
            last = Some(p);
        } else if let Some(p) = last.as_mut() {
            p.step = done;
            p.resampled = resampled;
        }
    }
    last.ok_or_else(|| AutoencoderError::InvalidArgument("no training batches".into()))
}
