//! What to train ([`Architecture`]) and how ([`SaeTrainConfig`]).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{AutoencoderError, Result};

/// The kind of sparse autoencoder to train, with the hyperparameters of its loss.
///
/// Defaults follow SAELens's training configs (and sparsify's for the AuxK loss, see
/// [`SaeTrainConfig::aux_k_coefficient`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Architecture {
    /// ReLU SAE (SAELens `standard`): loss `mse + l1 * sum_j z_j * w_j`, where `w_j` is the
    /// norm of decoder row `j` with `decoder_norm_penalty` (SAELens's
    /// `scale_sparsity_penalty_by_decoder_norm`; the decoder is then left free) and 1 without
    /// it (the decoder rows are then kept at unit norm).
    Relu {
        /// L1 coefficient (warmed up over [`SaeTrainConfig::sparsity_warm_up_steps`]).
        l1_coefficient: f64,
        /// Weight each latent's L1 by its decoder row's norm.
        decoder_norm_penalty: bool,
    },
    /// TopK SAE (sparsify, SAELens `topk`): the `k` largest `relu` pre-activations of each row
    /// are kept; AuxK loss on dead latents.
    TopK {
        /// Latents kept per row.
        k: usize,
    },
    /// BatchTopK SAE (SAELens `batchtopk`): the `k * rows` largest activations of the whole
    /// batch are kept; a threshold (moving average of the smallest kept activation, rate
    /// `threshold_lr`) replaces the batch top-k at inference, where it is a JumpReLU SAE.
    BatchTopK {
        /// Mean latents kept per row.
        k: usize,
        /// Rate of the threshold's moving average (SAELens `topk_threshold_lr`, 0.01).
        threshold_lr: f64,
    },
    /// JumpReLU SAE (SAELens `jumprelu`, Gemma Scope): `z = pre * 1[pre > exp(log_threshold)]`,
    /// loss `mse + l0 * sum_j 1[pre_j > threshold_j]`, trained through straight-through
    /// estimators with a rectangle kernel of width `bandwidth`.
    JumpRelu {
        /// Initial threshold of every latent (SAELens 0.001).
        init_threshold: f64,
        /// Kernel bandwidth of the pseudo-derivatives (SAELens 0.001).
        bandwidth: f64,
        /// L0 coefficient (SAELens 1.0; warmed up over
        /// [`SaeTrainConfig::sparsity_warm_up_steps`]).
        l0_coefficient: f64,
    },
    /// Gated SAE (SAELens `gated`): loss `mse + l1 * sum_j relu(pi_gate_j) * |W_dec_j| + aux`,
    /// where `aux` is the reconstruction error of `relu(pi_gate)` through the frozen decoder.
    Gated {
        /// L1 coefficient of the gate's activations.
        l1_coefficient: f64,
    },
    /// Matryoshka BatchTopK (SAELens `matryoshka_batchtopk`): a BatchTopK SAE whose loss adds,
    /// for each prefix width in `widths` but the full one, the reconstruction error of the
    /// BatchTopK of that prefix alone. Saved as JumpReLU, like BatchTopK.
    Matryoshka {
        /// Mean latents kept per row.
        k: usize,
        /// Strictly increasing prefix widths; the full width is added when missing.
        widths: Vec<usize>,
        /// Rate of the threshold's moving average.
        threshold_lr: f64,
    },
}

impl Architecture {
    /// ReLU with the decoder-norm-weighted L1 penalty (SAELens's `standard` training).
    pub fn relu(l1_coefficient: f64) -> Self {
        Self::Relu {
            l1_coefficient,
            decoder_norm_penalty: true,
        }
    }

    /// BatchTopK with SAELens's threshold rate 0.01.
    pub fn batch_topk(k: usize) -> Self {
        Self::BatchTopK {
            k,
            threshold_lr: 0.01,
        }
    }

    /// JumpReLU with SAELens's defaults: threshold 0.001, bandwidth 0.001, L0 coefficient 1.
    pub fn jumprelu() -> Self {
        Self::JumpRelu {
            init_threshold: 0.001,
            bandwidth: 0.001,
            l0_coefficient: 1.0,
        }
    }

    /// Matryoshka BatchTopK with the threshold rate 0.01.
    pub fn matryoshka(k: usize, widths: Vec<usize>) -> Self {
        Self::Matryoshka {
            k,
            widths,
            threshold_lr: 0.01,
        }
    }

    /// The name SAELens gives it in a training config (`standard`, `topk`, `batchtopk`,
    /// `jumprelu`, `gated`, `matryoshka_batchtopk`).
    pub fn saelens_name(&self) -> &'static str {
        match self {
            Self::Relu { .. } => "standard",
            Self::TopK { .. } => "topk",
            Self::BatchTopK { .. } => "batchtopk",
            Self::JumpRelu { .. } => "jumprelu",
            Self::Gated { .. } => "gated",
            Self::Matryoshka { .. } => "matryoshka_batchtopk",
        }
    }

    /// Whether it keeps decoder rows at unit norm by default: every kind but ReLU with the
    /// decoder-norm penalty and Gated (whose penalties are weighted by the decoder norms).
    pub fn default_unit_norm_decoder(&self) -> bool {
        !matches!(
            self,
            Self::Relu {
                decoder_norm_penalty: true,
                ..
            } | Self::Gated { .. }
        )
    }

    /// Whether the AuxK loss applies (TopK, BatchTopK, Matryoshka).
    pub fn uses_aux_k(&self) -> bool {
        matches!(
            self,
            Self::TopK { .. } | Self::BatchTopK { .. } | Self::Matryoshka { .. }
        )
    }

    /// Checks the hyperparameters against the latent width.
    pub(crate) fn check(&self, latent_dim: usize) -> Result<()> {
        let bad = |m: String| Err(AutoencoderError::InvalidArgument(m));
        let nonneg = |name: &str, v: f64| -> Result<()> {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                bad(format!("{name} must be finite and >= 0, got {v}"))
            }
        };
        let check_k = |k: usize| -> Result<()> {
            if k == 0 || k > latent_dim {
                bad(format!(
                    "k = {k} must be in 1..={latent_dim} (the latent width)"
                ))
            } else {
                Ok(())
            }
        };
        let check_rate = |r: f64| -> Result<()> {
            if r.is_finite() && r > 0.0 && r <= 1.0 {
                Ok(())
            } else {
                bad(format!("threshold_lr must be in (0, 1], got {r}"))
            }
        };
        match self {
            Self::Relu { l1_coefficient, .. } | Self::Gated { l1_coefficient } => {
                nonneg("l1_coefficient", *l1_coefficient)
            }
            Self::TopK { k } => check_k(*k),
            Self::BatchTopK { k, threshold_lr } => {
                check_k(*k)?;
                check_rate(*threshold_lr)
            }
            Self::JumpRelu {
                init_threshold,
                bandwidth,
                l0_coefficient,
            } => {
                if !(init_threshold.is_finite() && *init_threshold > 0.0) {
                    return bad(format!("init_threshold must be > 0, got {init_threshold}"));
                }
                if !(bandwidth.is_finite() && *bandwidth > 0.0) {
                    return bad(format!("bandwidth must be > 0, got {bandwidth}"));
                }
                nonneg("l0_coefficient", *l0_coefficient)
            }
            Self::Matryoshka {
                k,
                widths,
                threshold_lr,
            } => {
                check_k(*k)?;
                check_rate(*threshold_lr)?;
                matryoshka_widths(widths, *k, latent_dim).map(|_| ())
            }
        }
    }
}

/// The prefix widths checked (strictly increasing, each at least `k`, at most `latent_dim`),
/// with `latent_dim` appended when missing.
pub(crate) fn matryoshka_widths(
    widths: &[usize],
    k: usize,
    latent_dim: usize,
) -> Result<Vec<usize>> {
    let mut out = widths.to_vec();
    if out.last() != Some(&latent_dim) {
        out.push(latent_dim);
    }
    for w in out.windows(2) {
        if w[0] >= w[1] {
            return Err(AutoencoderError::InvalidArgument(format!(
                "matryoshka widths must be strictly increasing and at most the latent width \
                 {latent_dim}, got {widths:?}"
            )));
        }
    }
    if out[0] < k {
        return Err(AutoencoderError::InvalidArgument(format!(
            "the smallest matryoshka width {} is less than k = {k}",
            out[0]
        )));
    }
    Ok(out)
}

/// Where the decoder bias starts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BDecInit {
    /// Zeros.
    Zeros,
    /// The mean of the first batch (of the targets, for a transcoder).
    Mean,
    /// The geometric median of the first batch, by this many Weiszfeld iterations (SAELens's
    /// `b_dec_init_method: geometric_median`).
    GeometricMedian {
        /// Weiszfeld iterations.
        iterations: usize,
    },
}

/// How to train. [`SaeTrainConfig::new`] gives the defaults for an architecture; serde reads
/// a JSON config naming only what it changes (with `architecture` required).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SaeTrainConfig {
    /// What to train.
    pub architecture: Architecture,
    /// Peak learning rate (Adam, no weight decay).
    #[serde(default = "defaults::lr")]
    pub lr: f64,
    /// Linear learning-rate warm-up from 0 over this many steps.
    #[serde(default)]
    pub lr_warm_up_steps: usize,
    /// Linear decay to `lr_end` over the last this-many steps of `total_steps` (needs it).
    #[serde(default)]
    pub lr_decay_steps: usize,
    /// Learning rate at the end of the decay.
    #[serde(default)]
    pub lr_end: f64,
    /// Stop after this many steps (else when the batches run out).
    #[serde(default)]
    pub total_steps: Option<usize>,
    /// Linear warm-up of the L1 / L0 coefficient from 0 over this many steps.
    #[serde(default)]
    pub sparsity_warm_up_steps: usize,
    /// Adam's beta1.
    #[serde(default = "defaults::beta1")]
    pub beta1: f64,
    /// Adam's beta2.
    #[serde(default = "defaults::beta2")]
    pub beta2: f64,
    /// Keep decoder rows at unit norm after every step; `None`: the architecture's default
    /// ([`Architecture::default_unit_norm_decoder`]).
    #[serde(default)]
    pub unit_norm_decoder: Option<bool>,
    /// Norm of the decoder rows at init (the encoder starts as the decoder's transpose).
    /// `None`: 0.1 when the decoder is left free (SAELens `decoder_init_norm`), else 1.
    #[serde(default)]
    pub decoder_init_norm: Option<f64>,
    /// Where `b_dec` starts.
    #[serde(default = "defaults::b_dec_init")]
    pub b_dec_init: BDecInit,
    /// Scale inputs (and targets) so that their mean norm is `sqrt(width)` (SAELens
    /// `normalize_activations: expected_average_only_in`), the factor estimated from the
    /// first `norm_estimation_batches` batches and folded into the weights at the end.
    #[serde(default)]
    pub normalize_activations: bool,
    /// Batches read to estimate the normalisation factor (held in memory meanwhile).
    #[serde(default = "defaults::norm_batches")]
    pub norm_estimation_batches: usize,
    /// Latents the AuxK loss revives per row; `None`: half the output width (sparsify's and
    /// SAELens's heuristic).
    #[serde(default)]
    pub aux_k: Option<usize>,
    /// Coefficient of the AuxK loss, which is normalised by the batch's total variance as in
    /// sparsify (`auxk_alpha` 1/32).
    #[serde(default = "defaults::aux_k_coefficient")]
    pub aux_k_coefficient: f64,
    /// A latent is dead after this many steps without firing (the AuxK loss and resampling
    /// act on the dead).
    #[serde(default = "defaults::dead_window")]
    pub dead_window: u64,
    /// Resample dead latents every this many steps (ReLU only; Anthropic's recipe): `None`
    /// never.
    #[serde(default)]
    pub resample_every: Option<usize>,
    /// Seed of the weight init and of resampling.
    #[serde(default)]
    pub seed: u64,
    /// Call the progress callback every this-many steps (and on the first and last).
    #[serde(default = "defaults::log_every")]
    pub log_every: usize,
    /// Write a checkpoint (see [`super::resume_sae_training`]) into `checkpoint_dir` every
    /// this-many steps; `None`: never.
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// The folder the checkpoints go to, each replacing the last one atomically (needed by
    /// `checkpoint_every`).
    #[serde(default)]
    pub checkpoint_dir: Option<PathBuf>,
    /// Append one JSON object per progress record ([`super::SaeTrainProgress`]) to this file;
    /// a fresh run starts it anew, a resumed run keeps the records up to its checkpoint's step.
    #[serde(default)]
    pub metrics_path: Option<PathBuf>,
}

mod defaults {
    use super::BDecInit;
    pub fn lr() -> f64 {
        4e-4
    }
    pub fn beta1() -> f64 {
        0.9
    }
    pub fn beta2() -> f64 {
        0.999
    }
    pub fn b_dec_init() -> BDecInit {
        BDecInit::GeometricMedian { iterations: 30 }
    }
    pub fn norm_batches() -> usize {
        10
    }
    pub fn aux_k_coefficient() -> f64 {
        1.0 / 32.0
    }
    pub fn dead_window() -> u64 {
        1000
    }
    pub fn log_every() -> usize {
        100
    }
}

impl SaeTrainConfig {
    /// The defaults for `architecture`.
    ///
    /// ```
    /// use vene_autoencoder::training::{Architecture, SaeTrainConfig};
    /// let cfg = SaeTrainConfig::new(Architecture::TopK { k: 8 });
    /// assert_eq!(cfg.lr, 4e-4);
    /// assert!(cfg.unit_norm_decoder());
    /// ```
    pub fn new(architecture: Architecture) -> Self {
        Self {
            architecture,
            lr: defaults::lr(),
            lr_warm_up_steps: 0,
            lr_decay_steps: 0,
            lr_end: 0.0,
            total_steps: None,
            sparsity_warm_up_steps: 0,
            beta1: defaults::beta1(),
            beta2: defaults::beta2(),
            unit_norm_decoder: None,
            decoder_init_norm: None,
            b_dec_init: defaults::b_dec_init(),
            normalize_activations: false,
            norm_estimation_batches: defaults::norm_batches(),
            aux_k: None,
            aux_k_coefficient: defaults::aux_k_coefficient(),
            dead_window: defaults::dead_window(),
            resample_every: None,
            seed: 0,
            log_every: defaults::log_every(),
            checkpoint_every: None,
            checkpoint_dir: None,
            metrics_path: None,
        }
    }

    /// Whether decoder rows are kept at unit norm.
    pub fn unit_norm_decoder(&self) -> bool {
        self.unit_norm_decoder
            .unwrap_or_else(|| self.architecture.default_unit_norm_decoder())
    }

    /// The decoder rows' norm at init.
    pub fn decoder_init_norm(&self) -> f64 {
        self.decoder_init_norm
            .unwrap_or(if self.unit_norm_decoder() { 1.0 } else { 0.1 })
    }

    /// The learning rate at `step` (0-based): linear warm-up, plateau, linear decay.
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

    /// The fraction (0..=1) of the sparsity coefficient in force at `step` (0-based).
    pub fn sparsity_scale_at(&self, step: usize) -> f64 {
        crate::schedule::warm_up_fraction(self.sparsity_warm_up_steps, step)
    }

    pub(crate) fn check(&self, latent_dim: usize) -> Result<()> {
        let bad = |m: String| Err(AutoencoderError::InvalidArgument(m));
        self.architecture.check(latent_dim)?;
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!("lr must be positive, got {}", self.lr));
        }
        if self.lr_decay_steps > 0 && self.total_steps.is_none() {
            return bad("lr_decay_steps needs total_steps".into());
        }
        if !(self.aux_k_coefficient.is_finite() && self.aux_k_coefficient >= 0.0) {
            return bad(format!(
                "aux_k_coefficient must be >= 0, got {}",
                self.aux_k_coefficient
            ));
        }
        if self.aux_k == Some(0) {
            return bad("aux_k must be at least 1".into());
        }
        if let Some(n) = self.decoder_init_norm {
            if !(n.is_finite() && n > 0.0) {
                return bad(format!("decoder_init_norm must be > 0, got {n}"));
            }
        }
        if self.resample_every == Some(0) {
            return bad("resample_every must be at least 1".into());
        }
        if self.resample_every.is_some() && !matches!(self.architecture, Architecture::Relu { .. })
        {
            return bad(format!(
                "resampling dead latents is for ReLU SAEs; {} revives them with the AuxK loss \
                 or its threshold",
                self.architecture.saelens_name()
            ));
        }
        if self.checkpoint_every == Some(0) {
            return bad("checkpoint_every must be at least 1".into());
        }
        if self.checkpoint_every.is_some() && self.checkpoint_dir.is_none() {
            return bad("checkpoint_every needs checkpoint_dir".into());
        }
        if self.normalize_activations && self.norm_estimation_batches == 0 {
            return bad("norm_estimation_batches must be at least 1".into());
        }
        Ok(())
    }
}
