//! How good is an SAE inside its model: SAELens's evaluation (sparsity, reconstruction, and
//! the language-model loss with the SAE spliced in), over a set of token sequences.

use candle_core::{DType, Tensor, D};
use serde::Serialize;
use vene_hooks::{HookCall, Hooks, NoHooks, Site};
use vene_models::{LanguageModel, LogitsAt};

use crate::splice::{Splice, SpliceHooks};
use crate::{Result, VeneError};

/// Options of [`eval_sae`].
#[derive(Debug, Clone)]
pub struct SaeEvalOptions {
    /// Sequences per forward pass (padded on the right to the longest of the batch).
    pub batch_size: usize,
    /// A latent firing on more than this fraction of tokens counts as dense (default 0.1).
    pub dense_threshold: f64,
    /// Tokens whose positions are left out of the SAE statistics (L0, MSE, explained
    /// variance, densities), e.g. the BOS token, whose activations are outliers. The losses
    /// still count every prediction.
    pub ignore_tokens: Vec<u32>,
}

impl Default for SaeEvalOptions {
    fn default() -> Self {
        Self {
            batch_size: 8,
            dense_threshold: 0.1,
            ignore_tokens: Vec::new(),
        }
    }
}

/// What [`eval_sae`] measured. Losses are mean next-token cross-entropies (nats) over every
/// prediction of the sequences; the SAE statistics are over every token not ignored.
#[derive(Debug, Clone, Serialize)]
pub struct SaeEvalReport {
    /// Sequences evaluated.
    pub sequences: usize,
    /// Tokens in the SAE statistics.
    pub tokens: usize,
    /// Next-token predictions in the losses.
    pub predictions: usize,
    /// Mean number of latents firing (non-zero) per token.
    pub l0: f64,
    /// Mean squared reconstruction error per element.
    pub mse: f64,
    /// `1 - Σ‖a - â‖² / Σ‖a - mean(a)‖²` over all tokens (the mean taken over the tokens).
    pub explained_variance: f64,
    /// Loss of the clean model.
    pub ce_loss_clean: f64,
    /// Loss with the activation replaced by the SAE's reconstruction.
    pub ce_loss_spliced: f64,
    /// Loss with the activation replaced by zeros.
    pub ce_loss_zero_ablated: f64,
    /// `(zero-ablated - spliced) / (zero-ablated - clean)`: 1 when splicing costs nothing,
    /// 0 when it is as bad as zero ablation (NaN, written as null, when zero ablation costs
    /// nothing).
    pub loss_recovered: f64,
    /// Mean KL divergence of the spliced model's next-token distribution from the clean one's,
    /// per token.
    pub kl_div_spliced: f64,
    /// The same for the zero-ablated model.
    pub kl_div_zero_ablated: f64,
    /// Fraction of latents that never fired.
    pub dead_fraction: f64,
    /// Fraction of latents firing on more than `dense_threshold` of the tokens.
    pub dense_fraction: f64,
    /// The threshold used for `dense_fraction`.
    pub dense_threshold: f64,
    /// Each latent's firing density: the fraction of tokens where it is non-zero.
    pub latent_density: Vec<f64>,
}

/// Evaluates `splice`'s autoencoder inside `model` over `sequences` (token ids; each is one
/// forward pass, so keep them within the model's context): runs each batch clean, with the
/// write site replaced by the plain reconstruction (the splice's error term and latent edit
/// are not used) and with it replaced by zeros, and reports SAELens's metrics (see
/// [`SaeEvalReport`]). `progress` is called after each batch with (sequences done, total).
///
/// ```
/// use std::sync::Arc;
/// use candle_core::{DType, Device};
/// use vene::autoencoder::{Autoencoder, AutoencoderLayer};
/// use vene::hooks::{Component, Site};
/// use vene::models::{Gpt2Config, Model};
/// use vene::{eval_sae, SaeEvalOptions, Splice};
///
/// let (model, _) = Model::random_gpt2(&Gpt2Config::tiny(32, 8, 2, 2), DType::F32, &Device::Cpu)?;
/// let sae: Arc<dyn Autoencoder> = Arc::new(AutoencoderLayer::new(8, 16, DType::F32, &Device::Cpu)?);
/// let splice = Splice::new(Site::new(1, Component::BlockInput), sae);
/// let report = eval_sae(&model, &splice, &[vec![1, 2, 3, 4], vec![5, 6]], &SaeEvalOptions::default(), &mut |_, _| {})?;
/// assert_eq!((report.tokens, report.predictions), (6, 4));
/// assert_eq!(report.latent_density.len(), 16);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn eval_sae(
    model: &dyn LanguageModel,
    splice: &Splice,
    sequences: &[Vec<u32>],
    opts: &SaeEvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<SaeEvalReport> {
    if opts.batch_size == 0 {
        return Err(VeneError::Config(
            "eval_sae: batch_size must be at least 1".into(),
        ));
    }
    if sequences.is_empty() {
        return Err(VeneError::Config(
            "eval_sae: no sequences to evaluate".into(),
        ));
    }
    if let Some(i) = sequences.iter().position(Vec::is_empty) {
        return Err(VeneError::Config(format!(
            "eval_sae: sequence {i} is empty"
        )));
    }
    let splice = splice.reconstruction_only();
    splice.check(model)?;
    let mut acc = Accumulator::new(splice.autoencoder().latent_dim());
    let mut done = 0;
    for batch in sequences.chunks(opts.batch_size) {
        eval_batch(model, &splice, batch, opts, &mut acc)?;
        done += batch.len();
        progress(done, sequences.len());
    }
    Ok(acc.report(sequences.len(), opts.dense_threshold))
}

/// Running sums over the batches.
struct Accumulator {
    tokens: usize,
    predictions: usize,
    ce: [f64; 3],
    kl: [f64; 2],
    kl_tokens: usize,
    fired: u64,
    sq_err: f64,
    elements: usize,
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    fires: Vec<u64>,
}

impl Accumulator {
    fn new(latents: usize) -> Self {
        Self {
            tokens: 0,
            predictions: 0,
            ce: [0.0; 3],
            kl: [0.0; 2],
            kl_tokens: 0,
            fired: 0,
            sq_err: 0.0,
            elements: 0,
            sum: Vec::new(),
            sum_sq: Vec::new(),
            fires: vec![0; latents],
        }
    }

    fn report(&self, sequences: usize, dense_threshold: f64) -> SaeEvalReport {
        let per = |x: f64, n: usize| if n == 0 { f64::NAN } else { x / n as f64 };
        let n = self.tokens as f64;
        let total_var: f64 = self
            .sum
            .iter()
            .zip(&self.sum_sq)
            .map(|(s, s2)| s2 - s * s / n)
            .sum();
        let explained_variance = if total_var > 0.0 {
            1.0 - self.sq_err / total_var
        } else if self.sq_err == 0.0 {
            1.0
        } else {
            f64::NEG_INFINITY
        };
        let [clean, spliced, zero] = self.ce.map(|c| per(c, self.predictions));
        let latent_density: Vec<f64> = self
            .fires
            .iter()
            .map(|&f| per(f as f64, self.tokens))
            .collect();
        let latents = latent_density.len().max(1) as f64;
        SaeEvalReport {
            sequences,
            tokens: self.tokens,
            predictions: self.predictions,
            l0: per(self.fired as f64, self.tokens),
            mse: per(self.sq_err, self.elements),
            explained_variance,
            ce_loss_clean: clean,
            ce_loss_spliced: spliced,
            ce_loss_zero_ablated: zero,
            loss_recovered: (zero - spliced) / (zero - clean),
            kl_div_spliced: per(self.kl[0], self.kl_tokens),
            kl_div_zero_ablated: per(self.kl[1], self.kl_tokens),
            dead_fraction: self.fires.iter().filter(|&&f| f == 0).count() as f64 / latents,
            dense_fraction: latent_density
                .iter()
                .filter(|&&d| d > dense_threshold)
                .count() as f64
                / latents,
            dense_threshold,
            latent_density,
        }
    }
}

/// Log-probabilities `[B, T, V]` in f32.
fn log_probs(logits: Option<Tensor>) -> Result<Tensor> {
    let logits =
        logits.ok_or_else(|| VeneError::Config("the model returned no logits".to_string()))?;
    Ok(candle_nn::ops::log_softmax(
        &logits.to_dtype(DType::F32)?,
        D::Minus1,
    )?)
}

/// Summed next-token cross-entropy of `lp` `[B, T, V]` over the predictions `pred` marks.
fn cross_entropy(lp: &Tensor, ids: &Tensor, pred: &Tensor) -> Result<f64> {
    let t = ids.dim(1)?;
    if t < 2 {
        return Ok(0.0);
    }
    let targets = ids.narrow(1, 1, t - 1)?.contiguous()?.unsqueeze(2)?;
    let picked = lp.narrow(1, 0, t - 1)?.contiguous()?.gather(&targets, 2)?;
    let nll = (picked.squeeze(2)?.neg()? * pred)?;
    Ok(nll.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Summed KL(clean ‖ other) per token over the tokens `real` marks.
fn kl_div(clean: &Tensor, other: &Tensor, real: &Tensor) -> Result<f64> {
    let per_token = (clean.exp()? * (clean - other)?)?.sum(D::Minus1)?;
    Ok((per_token * real)?
        .sum_all()?
        .to_dtype(DType::F64)?
        .to_scalar::<f64>()?)
}

fn eval_batch(
    model: &dyn LanguageModel,
    splice: &Splice,
    batch: &[Vec<u32>],
    opts: &SaeEvalOptions,
    acc: &mut Accumulator,
) -> Result<()> {
    let device = model.device();
    let crate::PaddedBatch {
        ids,
        mask,
        real: mask_vec,
    } = crate::PaddedBatch::new(batch, device)?;
    let (b, t) = ids.dims2()?;
    let real = Tensor::from_vec(
        mask_vec.iter().map(|&m| m as f32).collect::<Vec<_>>(),
        (b, t),
        device,
    )?;
    let pred = if t >= 2 {
        (real.narrow(1, 0, t - 1)? * real.narrow(1, 1, t - 1)?)?
    } else {
        Tensor::zeros((b, 0), DType::F32, device)?
    };
    let n_pred = batch.iter().map(|s| s.len() - 1).sum::<usize>();
    let run = |hooks: &mut dyn Hooks| -> Result<Tensor> {
        log_probs(model.forward_logits_at(&ids, mask.as_ref(), None, &LogitsAt::All, hooks)?)
    };

    let clean = run(&mut NoHooks)?;
    acc.ce[0] += cross_entropy(&clean, &ids, &pred)?;

    let mut hooks = SpliceHooks::new(vec![splice.clone()]).recording(true);
    let spliced = run(&mut hooks)?;
    acc.ce[1] += cross_entropy(&spliced, &ids, &pred)?;
    acc.kl[0] += kl_div(&clean, &spliced, &real)?;
    drop(spliced);
    let record = hooks.take_records().pop().flatten().ok_or_else(|| {
        VeneError::Config(format!(
            "the forward pass never reached {} of layer {}",
            splice.write_site().component,
            splice.write_site().layer
        ))
    })?;

    let zero = run(&mut ZeroAblation(splice.write_site()))?;
    acc.ce[2] += cross_entropy(&zero, &ids, &pred)?;
    acc.kl[1] += kl_div(&clean, &zero, &real)?;
    acc.predictions += n_pred;
    acc.kl_tokens += mask_vec.iter().filter(|&&m| m == 1).count();

    // SAE statistics at the real, not ignored, tokens.
    let flat_ids: Vec<u32> = ids.flatten_all()?.to_vec1()?;
    let rows: Vec<u32> = (0..b * t)
        .filter(|&i| mask_vec[i] == 1 && !opts.ignore_tokens.contains(&flat_ids[i]))
        .map(|i| i as u32)
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let rows_t = Tensor::new(rows.as_slice(), device)?;
    let select = |x: &Tensor| -> Result<Tensor> {
        let w = x.dim(D::Minus1)?;
        Ok(x.reshape((b * t, w))?
            .index_select(&rows_t, 0)?
            .to_dtype(DType::F32)?)
    };
    let target = select(&record.target)?;
    let recon = select(&record.reconstruction)?;
    let z = select(&record.latents)?;
    let to_f64 = |x: Tensor| -> Result<f64> { Ok(x.to_dtype(DType::F64)?.to_scalar::<f64>()?) };
    acc.sq_err += to_f64((&target - &recon)?.sqr()?.sum_all()?)?;
    acc.elements += target.elem_count();
    let target64 = target.to_dtype(DType::F64)?;
    let sum: Vec<f64> = target64.sum(0)?.to_vec1()?;
    let sum_sq: Vec<f64> = target64.sqr()?.sum(0)?.to_vec1()?;
    if acc.sum.is_empty() {
        acc.sum = vec![0.0; sum.len()];
        acc.sum_sq = vec![0.0; sum.len()];
    }
    for (a, s) in acc.sum.iter_mut().zip(sum) {
        *a += s;
    }
    for (a, s) in acc.sum_sq.iter_mut().zip(sum_sq) {
        *a += s;
    }
    let fires: Vec<f32> = z.ne(0.0)?.to_dtype(DType::F32)?.sum(0)?.to_vec1()?;
    for (a, f) in acc.fires.iter_mut().zip(fires) {
        *a += f as u64;
        acc.fired += f as u64;
    }
    acc.tokens += rows.len();
    Ok(())
}

/// Replaces the activation at one site by zeros.
struct ZeroAblation(Site);

impl Hooks for ZeroAblation {
    fn is_active(&self, site: Site) -> bool {
        site == self.0
    }

    fn on_activation(&mut self, _call: HookCall, activation: Tensor) -> vene_hooks::Result<Tensor> {
        Ok(activation.zeros_like()?)
    }
}
