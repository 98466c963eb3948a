//! [`TrainingSae`]: the trainable parameters of every architecture, and their conversion to
//! the crate's inference types.

use candle_core::{DType, Device, Tensor, Var};

use super::config::{Architecture, SaeTrainConfig};
use super::init::SeededRng;
use crate::core::{saelens_parts, Part};
use crate::util::Orient;
use crate::{
    Autoencoder, AutoencoderError, GatedAutoencoder, JumpReLUAutoencoder, ReluAutoencoder, Result,
    TopKAutoencoder,
};

/// A sparse autoencoder (or transcoder) being trained: SAELens's parameters as candle
/// [`Var`]s (`W_enc [d_in, L]`, `b_enc [L]` (the gate's bias for Gated), `W_dec [L, d_out]`,
/// `b_dec [d_out]`, plus `log_threshold [L]` for JumpReLU and `r_mag`, `b_mag [L]` for Gated),
/// the BatchTopK threshold, and the normalisation factors of its inputs and targets.
///
/// Train it with [`super::train_sae`] / [`super::train_transcoder`]; then
/// [`TrainingSae::to_trained`] gives the inference SAE, the factors folded in, and
/// [`TrainingSae::save_saelens`] / [`TrainingSae::save_sparsify`] write it.
///
/// ```
/// use candle_core::{DType, Device};
/// use vene_autoencoder::training::{Architecture, SaeTrainConfig, TrainingSae};
/// use vene_autoencoder::Autoencoder;
///
/// let cfg = SaeTrainConfig::new(Architecture::TopK { k: 2 });
/// let sae = TrainingSae::new(&cfg, 4, 8, DType::F32, &Device::Cpu)?;
/// let trained = sae.to_trained()?;
/// assert_eq!((trained.as_autoencoder().input_dim(), trained.as_autoencoder().latent_dim()), (4, 8));
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TrainingSae {
    pub(crate) architecture: Architecture,
    pub(crate) w_enc: Var,
    pub(crate) b_enc: Var,
    pub(crate) w_dec: Var,
    pub(crate) b_dec: Var,
    pub(crate) log_threshold: Option<Var>,
    pub(crate) r_mag: Option<Var>,
    pub(crate) b_mag: Option<Var>,
    /// BatchTopK / Matryoshka: the running threshold (in the scaled units).
    pub(crate) batch_threshold: f64,
    pub(crate) input_dim: usize,
    pub(crate) output_dim: usize,
    pub(crate) latent_dim: usize,
    pub(crate) transcoder: bool,
    /// Factors the inputs and targets were multiplied by during training.
    pub(crate) input_scale: f64,
    pub(crate) output_scale: f64,
}

/// A trained SAE as one of the crate's inference types.
#[derive(Debug, Clone)]
pub enum TrainedSae {
    /// ReLU (SAELens `standard` / `transcoder`).
    Relu(ReluAutoencoder),
    /// TopK.
    TopK(TopKAutoencoder),
    /// JumpReLU: trained as JumpReLU, BatchTopK or Matryoshka (their threshold at inference).
    JumpRelu(JumpReLUAutoencoder),
    /// Gated.
    Gated(GatedAutoencoder),
}

impl TrainedSae {
    /// The SAE behind the [`Autoencoder`] trait.
    pub fn as_autoencoder(&self) -> &dyn Autoencoder {
        match self {
            Self::Relu(a) => a,
            Self::TopK(a) => a,
            Self::JumpRelu(a) => a,
            Self::Gated(a) => a,
        }
    }

    /// The SAE boxed.
    pub fn into_boxed(self) -> Box<dyn Autoencoder> {
        match self {
            Self::Relu(a) => Box::new(a),
            Self::TopK(a) => Box::new(a),
            Self::JumpRelu(a) => Box::new(a),
            Self::Gated(a) => Box::new(a),
        }
    }
}

fn check_dims(what: &str, n: usize) -> Result<()> {
    if n == 0 {
        return Err(AutoencoderError::InvalidArgument(format!(
            "{what} must be at least 1"
        )));
    }
    Ok(())
}

impl TrainingSae {
    /// A fresh SAE of `cfg.architecture` reading and reconstructing width `input_dim` with
    /// `latent_dim` latents: decoder rows random directions of norm
    /// [`SaeTrainConfig::decoder_init_norm`] (seeded by `cfg.seed`), the encoder their
    /// transpose, biases zero, JumpReLU thresholds at their init.
    pub fn new(
        cfg: &SaeTrainConfig,
        input_dim: usize,
        latent_dim: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Self::build(cfg, input_dim, input_dim, latent_dim, false, dtype, device)
    }

    /// A fresh transcoder: reads width `input_dim`, predicts width `output_dim` (another
    /// site's). `b_dec` is never subtracted from its input. Gated transcoders do not exist in
    /// SAELens and are refused.
    pub fn new_transcoder(
        cfg: &SaeTrainConfig,
        input_dim: usize,
        output_dim: usize,
        latent_dim: usize,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if matches!(cfg.architecture, Architecture::Gated { .. }) {
            return Err(AutoencoderError::InvalidArgument(
                "a gated transcoder is not supported (SAELens has none); use relu, topk, \
                 batchtopk, jumprelu or matryoshka"
                    .into(),
            ));
        }
        Self::build(cfg, input_dim, output_dim, latent_dim, true, dtype, device)
    }

    fn build(
        cfg: &SaeTrainConfig,
        input_dim: usize,
        output_dim: usize,
        latent_dim: usize,
        transcoder: bool,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        check_dims("input_dim", input_dim)?;
        check_dims("output_dim", output_dim)?;
        check_dims("latent_dim", latent_dim)?;
        if !dtype.is_float() {
            return Err(AutoencoderError::DTypeMismatch(format!(
                "a trained SAE needs a floating dtype, got {dtype:?}"
            )));
        }
        for (a, b) in [(input_dim, latent_dim), (latent_dim, output_dim)] {
            if crate::limits::checked_elements(&[a, b]).is_none() {
                return Err(AutoencoderError::InvalidArgument(format!(
                    "a {a} x {b} weight exceeds the cap of {} elements per tensor",
                    crate::limits::MAX_NEW_TENSOR_ELEMENTS
                )));
            }
        }
        cfg.check(latent_dim)?;
        let mut rng = SeededRng::new(cfg.seed);
        let norm = cfg.decoder_init_norm();
        let w_dec = rng.directions(latent_dim, output_dim, norm, dtype, device)?;
        let w_enc = if input_dim == output_dim {
            w_dec.t()?.contiguous()?
        } else {
            rng.directions(latent_dim, input_dim, norm, dtype, device)?
                .t()?
                .contiguous()?
        };
        let zeros = |n: usize| Tensor::zeros(n, dtype, device);
        let (mut log_threshold, mut r_mag, mut b_mag) = (None, None, None);
        match &cfg.architecture {
            Architecture::JumpRelu { init_threshold, .. } => {
                let t = (Tensor::ones(latent_dim, dtype, device)? * init_threshold.ln())?;
                log_threshold = Some(Var::from_tensor(&t)?);
            }
            Architecture::Gated { .. } => {
                r_mag = Some(Var::from_tensor(&zeros(latent_dim)?)?);
                b_mag = Some(Var::from_tensor(&zeros(latent_dim)?)?);
            }
            _ => {}
        }
        Ok(Self {
            architecture: cfg.architecture.clone(),
            w_enc: Var::from_tensor(&w_enc)?,
            b_enc: Var::from_tensor(&zeros(latent_dim)?)?,
            w_dec: Var::from_tensor(&w_dec)?,
            b_dec: Var::from_tensor(&zeros(output_dim)?)?,
            log_threshold,
            r_mag,
            b_mag,
            batch_threshold: 0.0,
            input_dim,
            output_dim,
            latent_dim,
            transcoder,
            input_scale: 1.0,
            output_scale: 1.0,
        })
    }

    /// What it trains as.
    pub fn architecture(&self) -> &Architecture {
        &self.architecture
    }

    /// Width it reads.
    pub fn input_dim(&self) -> usize {
        self.input_dim
    }

    /// Width it reconstructs (its input's, except for a transcoder).
    pub fn output_dim(&self) -> usize {
        self.output_dim
    }

    /// Number of latents.
    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    /// Whether it is a transcoder.
    pub fn is_transcoder(&self) -> bool {
        self.transcoder
    }

    /// The dtype it trains in.
    pub fn dtype(&self) -> DType {
        self.w_enc.dtype()
    }

    /// The factors its inputs and targets are multiplied by while it trains (1 without
    /// normalisation); [`TrainingSae::to_trained`] folds them into the weights.
    pub fn scaling_factors(&self) -> (f64, f64) {
        (self.input_scale, self.output_scale)
    }

    /// The JumpReLU thresholds `exp(log_threshold)` `[L]` (in the training units), or the
    /// BatchTopK / Matryoshka running threshold on every latent; `None` for the others.
    pub fn threshold(&self) -> Result<Option<Tensor>> {
        Ok(match (&self.log_threshold, &self.architecture) {
            (Some(t), _) => Some(t.as_tensor().exp()?),
            (None, Architecture::BatchTopK { .. } | Architecture::Matryoshka { .. }) => Some(
                (Tensor::ones(self.latent_dim, self.dtype(), self.w_enc.device())?
                    * self.batch_threshold)?,
            ),
            _ => None,
        })
    }

    /// Encoder weight `[d_in, L]` (training units).
    pub fn w_enc(&self) -> &Tensor {
        self.w_enc.as_tensor()
    }

    /// Encoder bias `[L]` (the gate's bias for Gated).
    pub fn b_enc(&self) -> &Tensor {
        self.b_enc.as_tensor()
    }

    /// Decoder weight `[L, d_out]` (training units): row `j` is latent `j`'s direction.
    pub fn w_dec(&self) -> &Tensor {
        self.w_dec.as_tensor()
    }

    /// Decoder bias `[d_out]` (training units).
    pub fn b_dec(&self) -> &Tensor {
        self.b_dec.as_tensor()
    }

    /// Every trained parameter with its SAELens name (`W_enc`, `b_enc`, `W_dec`, `b_dec`, and
    /// `log_threshold` / `r_mag`, `b_mag` where the architecture has them).
    pub(crate) fn named_vars(&self) -> Vec<(String, Var)> {
        let mut v = vec![
            ("W_enc".to_string(), self.w_enc.clone()),
            ("b_enc".to_string(), self.b_enc.clone()),
            ("W_dec".to_string(), self.w_dec.clone()),
            ("b_dec".to_string(), self.b_dec.clone()),
        ];
        for (name, var) in [
            ("log_threshold", &self.log_threshold),
            ("r_mag", &self.r_mag),
            ("b_mag", &self.b_mag),
        ] {
            if let Some(var) = var {
                v.push((name.to_string(), var.clone()));
            }
        }
        v
    }

    /// Whether `b_dec` is subtracted from the input (SAEs yes, transcoders no).
    pub(crate) fn apply_b_dec_to_input(&self) -> bool {
        !self.transcoder
    }

    /// Rescales every decoder row to unit norm.
    pub(crate) fn normalize_decoder_rows(&self) -> Result<()> {
        let w = self.w_dec.as_tensor().detach();
        let n = w
            .sqr()?
            .sum_keepdim(1)?
            .sqrt()?
            .clamp(1e-12, f64::INFINITY)?;
        self.w_dec.set(&w.broadcast_div(&n)?)?;
        Ok(())
    }

    /// `W_enc`, `b_enc`, `W_dec`, `b_dec` with the normalisation factors folded in.
    pub(crate) fn folded(&self) -> Result<[Tensor; 4]> {
        let (si, so) = (self.input_scale, self.output_scale);
        Ok([
            self.w_enc.as_tensor().detach().affine(si, 0.0)?,
            self.b_enc.as_tensor().detach(),
            self.w_dec.as_tensor().detach().affine(1.0 / so, 0.0)?,
            self.b_dec.as_tensor().detach().affine(1.0 / so, 0.0)?,
        ])
    }

    /// The inference SAE, with the normalisation factors folded into the weights (SAELens's
    /// `fold_activation_norm_scaling_factor`: `W_enc * s_in`, `W_dec / s_out`,
    /// `b_dec / s_out`; for an SAE `b_dec` is then subtracted from the raw input, which is
    /// the same as subtracting the scaled one from the scaled input).
    pub fn to_trained(&self) -> Result<TrainedSae> {
        let [w_enc, b_enc, w_dec, b_dec] = self.folded()?;
        let source = "TrainingSae::to_trained";
        let enc_dec = Orient::InOut;
        let input_dim = self.transcoder.then_some(self.input_dim);
        let parts = saelens_parts(w_enc, b_enc, w_dec, b_dec);
        Ok(match &self.architecture {
            Architecture::Relu { .. } => TrainedSae::Relu(ReluAutoencoder::from_parts(
                source, parts, enc_dec, enc_dec, input_dim,
            )?),
            Architecture::TopK { k } => {
                let sae = match input_dim {
                    Some(d) => TopKAutoencoder::transcoder_from_parts(
                        source, parts, enc_dec, enc_dec, *k, d,
                    )?,
                    None => TopKAutoencoder::from_parts(source, parts, enc_dec, enc_dec, *k)?,
                };
                TrainedSae::TopK(sae)
            }
            Architecture::JumpRelu { .. }
            | Architecture::BatchTopK { .. }
            | Architecture::Matryoshka { .. } => {
                let threshold = self.threshold()?.ok_or_else(|| {
                    AutoencoderError::InvalidArgument("no threshold to export".into())
                })?;
                let sae = JumpReLUAutoencoder::from_parts(
                    source,
                    parts,
                    Part::new("threshold", threshold),
                    enc_dec,
                    enc_dec,
                    input_dim,
                )?
                .with_apply_b_dec_to_input(self.apply_b_dec_to_input());
                TrainedSae::JumpRelu(sae)
            }
            Architecture::Gated { .. } => {
                let [w_enc, b_gate, w_dec, b_dec] = parts;
                let (r, b) = match (&self.r_mag, &self.b_mag) {
                    (Some(r), Some(b)) => (r.as_tensor().detach(), b.as_tensor().detach()),
                    _ => {
                        return Err(AutoencoderError::InvalidArgument(
                            "a gated SAE without r_mag and b_mag".into(),
                        ))
                    }
                };
                TrainedSae::Gated(GatedAutoencoder::from_parts(
                    source,
                    [
                        Part::new("W_enc", w_enc.tensor),
                        Part::new("b_gate", b_gate.tensor),
                        w_dec,
                        b_dec,
                    ],
                    [Part::new("r_mag", r), Part::new("b_mag", b)],
                    enc_dec,
                    enc_dec,
                )?)
            }
        })
    }
}
