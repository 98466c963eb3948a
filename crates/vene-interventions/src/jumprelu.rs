//! `JumpReLUAutoencoderIntervention`: interchange in a JumpReLU SAE's latent space.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use vene_autoencoder::{Autoencoder, JumpReLUAutoencoder};

use crate::autoencoder::{AeCore, AutoencoderMode};
use crate::selection::InterchangeDim;
use crate::state::embed_dim_entry;
use crate::{Intervention, InterventionError, Placement, Result, Selection};

/// Interchange in a JumpReLU SAE's latent space (pyvene's `JumpReLUAutoencoderIntervention`,
/// Gemma Scope layout): `pre = x @ W_enc + b_enc`, `z = relu(pre) * (pre > threshold)`,
/// swap the selected latents of the base for the source's, `decode(z) = z @ W_dec + b_dec`.
///
/// Per unit (pyvene sets `keep_last_dim` here, so it is per position as well). The default
/// selection is pyvene's: the first `interchange_dim` latents, `interchange_dim = embed_dim`
/// (clipped to the latent width, as pyvene's slice is); a [`Selection`] gives latent indices
/// (pyvene's `subspaces`). The same rank-`|dims|` path as [`crate::AutoencoderIntervention`]
/// is used when it applies, and the edited latent is decoded the same way, as the base's
/// reconstruction ([`vene_autoencoder::Autoencoder::decode_for`]), for an SAE loaded with an
/// input normalisation or skip connection. The SAE's tensors are not trainable (pyvene loads pre-trained
/// ones).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_interventions::{Intervention, JumpReLUAutoencoderIntervention, Selection};
///
/// let dev = Device::Cpu;
/// let eye = Tensor::eye(2, candle_core::DType::F32, &dev)?;
/// let zeros = Tensor::zeros(2, candle_core::DType::F32, &dev)?;
/// let thr = Tensor::new(&[0.5f32, 0.5], &dev)?;
/// // (w_enc, b_enc, w_dec, b_dec, threshold), as JumpReLUAutoencoder::from_tensors.
/// let iv = JumpReLUAutoencoderIntervention::from_tensors(
///     eye.clone(), zeros.clone(), eye, zeros, thr)?;
/// let base = Tensor::new(&[[[0.9f32, 0.4]]], &dev)?;
/// let source = Tensor::new(&[[[0.2f32, 0.7]]], &dev)?;
/// // Latent 1 swapped: base's latents [0.9, 0] -> [0.9, 0.7].
/// let out = iv.forward(&base, Some(&source), &Selection::Dims(vec![1]))?;
/// assert_eq!(out.flatten_all()?.to_vec1::<f32>()?, vec![0.9, 0.7]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct JumpReLUAutoencoderIntervention {
    sae: JumpReLUAutoencoder,
    core: AeCore,
    interchange_dim: InterchangeDim,
    selective: bool,
}

impl JumpReLUAutoencoderIntervention {
    /// From pyvene's / Gemma Scope's tensors, in the same order as
    /// [`JumpReLUAutoencoder::from_tensors`]: `W_enc [d, L]`, `b_enc [L]`, `W_dec [L, d]`,
    /// `b_dec [d]`, `threshold [L]` (checked by vene-autoencoder).
    pub fn from_tensors(
        w_enc: Tensor,
        b_enc: Tensor,
        w_dec: Tensor,
        b_dec: Tensor,
        threshold: Tensor,
    ) -> Result<Self> {
        Self::from_autoencoder(JumpReLUAutoencoder::from_tensors(
            w_enc, b_enc, w_dec, b_dec, threshold,
        )?)
    }

    /// Around a JumpReLU SAE (e.g. one loaded with vene-autoencoder's loaders).
    pub fn from_autoencoder(sae: JumpReLUAutoencoder) -> Result<Self> {
        let d = sae.input_dim();
        let l = sae.latent_dim();
        let core = AeCore::new(Arc::new(sae.clone()))?;
        Ok(Self {
            sae,
            core,
            interchange_dim: InterchangeDim::First(d.min(l)),
            selective: true,
        })
    }

    /// Sets the latents swapped by default: a list of latents (`vec![3, 7]`, `[3, 7]`) or
    /// `InterchangeDim::First(k)` for latents `0..k`, checked against the latent width; on
    /// error nothing changes.
    pub fn set_interchange_dim(&mut self, dims: impl Into<InterchangeDim>) -> Result<()> {
        let dims = dims.into();
        dims.resolve(self.sae.latent_dim(), "latent space")?;
        self.interchange_dim = dims;
        Ok(())
    }

    /// [`Self::set_interchange_dim`], by value.
    pub fn with_interchange_dim(mut self, dims: impl Into<InterchangeDim>) -> Result<Self> {
        self.set_interchange_dim(dims)?;
        Ok(self)
    }

    /// The latents swapped by default.
    pub fn interchange_dim(&self) -> &InterchangeDim {
        &self.interchange_dim
    }

    /// Sets the output mode (pyvene: [`AutoencoderMode::Reconstruction`]).
    pub fn with_mode(mut self, mode: AutoencoderMode) -> Self {
        self.core.mode = mode;
        self
    }

    /// Whether to use the rank-`|dims|` path when it applies (default true).
    pub fn with_selective(mut self, on: bool) -> Self {
        self.selective = on;
        self
    }

    /// The SAE.
    pub fn autoencoder(&self) -> &JumpReLUAutoencoder {
        &self.sae
    }

    /// The five tensors in Gemma Scope orientation (`W_enc [d, L]`, `W_dec [L, d]`). pyvene's
    /// format has no place for an input normalisation or a skip connection: an SAE with
    /// either is refused (save it in an [`crate::AutoencoderIntervention`]).
    fn tensors(&self) -> Result<Vec<(String, Tensor)>> {
        if self.sae.input_normalization() != vene_autoencoder::InputNormalization::None
            || self.sae.w_skip().is_some()
            || self.sae.apply_b_dec_to_input()
        {
            return Err(InterventionError::Unsupported(
                "JumpReLUAutoencoderIntervention: pyvene's state dict holds W_enc, W_dec, \
                 b_enc, b_dec and threshold only; this SAE's input normalisation, skip \
                 connection or b_dec subtraction would be lost (wrap it in an \
                 AutoencoderIntervention to save it)"
                    .into(),
            ));
        }
        let (d, l) = (self.sae.input_dim(), self.sae.latent_dim());
        let orient = |t: &Tensor, want: [usize; 2]| -> Result<Tensor> {
            if t.dims() == want {
                Ok(t.clone())
            } else {
                Ok(t.t()?.contiguous()?)
            }
        };
        let threshold = self.sae.threshold().cloned().ok_or_else(|| {
            InterventionError::Unsupported("JumpReLU autoencoder without thresholds".into())
        })?;
        Ok(vec![
            ("W_enc".into(), orient(self.sae.w_enc(), [d, l])?),
            ("W_dec".into(), orient(self.sae.w_dec(), [l, d])?),
            ("threshold".into(), threshold),
            ("b_enc".into(), self.sae.b_enc().clone()),
            ("b_dec".into(), self.sae.b_dec().clone()),
        ])
    }

    /// A copy with the SAE on `device` in `dtype` (settings kept; an overflowing cast is an
    /// error, never a silent infinity).
    fn rebuild(&self, device: &Device, dtype: DType) -> Result<Self> {
        let mut out = Self::from_autoencoder(self.sae.to(device, dtype)?)?;
        out.interchange_dim = self.interchange_dim.clone();
        out.selective = self.selective;
        out.core.mode = self.core.mode;
        Ok(out)
    }

    /// The SAE's device and dtype.
    fn placement(&self) -> (Device, DType) {
        (self.sae.w_enc().device().clone(), self.sae.w_enc().dtype())
    }
}

impl Intervention for JumpReLUAutoencoderIntervention {
    fn is_autoencoder(&self) -> bool {
        true
    }
    fn saves_state(&self) -> bool {
        true
    }
    fn type_name(&self) -> &'static str {
        "JumpReLUAutoencoderIntervention"
    }
    fn embed_dim(&self) -> usize {
        self.sae.input_dim()
    }
    fn forward(
        &self,
        base: &Tensor,
        source: Option<&Tensor>,
        selection: &Selection,
    ) -> Result<Tensor> {
        let (name, selective) = (self.type_name(), self.selective);
        self.core.intervene(
            name,
            base,
            source,
            selection,
            &self.interchange_dim,
            selective,
        )
    }
    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        let dev = Device::Cpu;
        let mut out = self.tensors()?;
        out.push(embed_dim_entry(self.embed_dim())?);
        out.push((
            "interchange_dim".into(),
            self.interchange_dim.to_tensor(&dev)?,
        ));
        Ok(out)
    }
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({
            "embed_dim": self.embed_dim(),
            "low_rank_dimension": self.sae.latent_dim(),
            "interchange_dim": self.interchange_dim,
            "mode": self.core.mode,
        })
    }
    fn to(&self, placement: &Placement) -> Result<Box<dyn Intervention>> {
        let (device, dtype) = self.placement();
        let (device, dtype) = placement.resolve_autoencoder(&device, dtype);
        Ok(Box::new(self.rebuild(&device, dtype)?))
    }
}
