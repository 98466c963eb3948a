//! `AutoencoderLayer`: pyvene's one-layer autoencoder, with trainable parameters.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Init, VarBuilder, VarMap};

use crate::core::{impl_autoencoder_via_core, ActSpec, LinearSae, Part};
use crate::util::Orient;
use crate::{AutoencoderError, Result};

/// pyvene's state-dict name of the encoder weight, `[latent_dim, input_dim]`.
pub const ENCODER_WEIGHT: &str = "encoder.0.weight";
/// pyvene's state-dict name of the encoder bias, `[latent_dim]`.
pub const ENCODER_BIAS: &str = "encoder.0.bias";
/// pyvene's state-dict name of the decoder weight, `[input_dim, latent_dim]`.
pub const DECODER_WEIGHT: &str = "decoder.0.weight";
/// pyvene's state-dict name of the decoder bias, `[input_dim]`.
pub const DECODER_BIAS: &str = "decoder.0.bias";

/// pyvene's `AutoencoderLayer`: `encode(x) = relu((x - b_dec) @ W_enc^T + b_enc)`,
/// `decode(z) = z @ W_dec^T + b_dec`.
///
/// Weights use torch `nn.Linear` layout and pyvene's names ([`ENCODER_WEIGHT`] `[L, d]`,
/// [`ENCODER_BIAS`] `[L]`, [`DECODER_WEIGHT`] `[d, L]`, [`DECODER_BIAS`] `[d]`). It computes in
/// the weights' dtype and returns in the input's dtype. Its parameters are candle [`Var`]s, so
/// it can be trained (see [`crate::train`]).
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_autoencoder::{Autoencoder, AutoencoderLayer};
///
/// let ae = AutoencoderLayer::new(16, 32, DType::F32, &Device::Cpu)?;
/// let x = Tensor::ones((2, 16), DType::F32, &Device::Cpu)?;
/// let (recon, latent) = ae.forward(&x, true)?;
/// assert_eq!(recon.dims(), &[2, 16]);
/// assert_eq!(latent.unwrap().dims(), &[2, 32]);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
#[derive(Debug, Clone)]
pub struct AutoencoderLayer {
    core: LinearSae,
    vars: [Var; 4],
}

impl AutoencoderLayer {
    /// A fresh autoencoder initialised like torch `nn.Linear`: weights and biases uniform in
    /// `(-1/sqrt(fan_in), 1/sqrt(fan_in))` (fan_in = `input_dim` for the encoder,
    /// `latent_dim` for the decoder).
    pub fn new(input_dim: usize, latent_dim: usize, dtype: DType, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, dtype, device);
        Self::from_var_builder(vb, input_dim, latent_dim)
    }

    /// Builds the parameters through `vb` under pyvene's names (`vb.pp("encoder").pp("0")`...),
    /// with torch `nn.Linear` initialisation when `vb` creates them (a [`VarMap`] backend).
    pub fn from_var_builder(vb: VarBuilder, input_dim: usize, latent_dim: usize) -> Result<Self> {
        if input_dim == 0 || latent_dim == 0 {
            return Err(AutoencoderError::InvalidArgument(format!(
                "AutoencoderLayer needs input_dim > 0 and latent_dim > 0, got {input_dim}, {latent_dim}"
            )));
        }
        if crate::limits::checked_elements(&[input_dim, latent_dim]).is_none() {
            return Err(AutoencoderError::InvalidArgument(format!(
                "AutoencoderLayer {input_dim} x {latent_dim} exceeds the cap of {} elements per tensor",
                crate::limits::MAX_NEW_TENSOR_ELEMENTS
            )));
        }
        let enc_bound = 1.0 / (input_dim as f64).sqrt();
        let dec_bound = 1.0 / (latent_dim as f64).sqrt();
        let uni = |b: f64| Init::Uniform { lo: -b, up: b };
        let enc = vb.pp("encoder").pp("0");
        let dec = vb.pp("decoder").pp("0");
        let ew = enc.get_with_hints((latent_dim, input_dim), "weight", uni(enc_bound))?;
        let eb = enc.get_with_hints(latent_dim, "bias", uni(enc_bound))?;
        let dw = dec.get_with_hints((input_dim, latent_dim), "weight", uni(dec_bound))?;
        let db = dec.get_with_hints(input_dim, "bias", uni(dec_bound))?;
        Self::from_tensors(ew, eb, dw, db)
    }

    /// Builds one from its four tensors in pyvene's layout: `encoder_weight [L, d]`,
    /// `encoder_bias [L]`, `decoder_weight [d, L]`, `decoder_bias [d]`. Shapes, dtypes and
    /// finiteness are checked; tensors that are not already [`Var`]s are copied into new ones.
    pub fn from_tensors(
        encoder_weight: Tensor,
        encoder_bias: Tensor,
        decoder_weight: Tensor,
        decoder_bias: Tensor,
    ) -> Result<Self> {
        Self::from_parts(
            "AutoencoderLayer::from_tensors",
            [
                Part::new(ENCODER_WEIGHT, encoder_weight),
                Part::new(ENCODER_BIAS, encoder_bias),
                Part::new(DECODER_WEIGHT, decoder_weight),
                Part::new(DECODER_BIAS, decoder_bias),
            ],
        )
    }

    /// Builds one from a state dict holding `{prefix}encoder.0.weight` and the other three
    /// (pyvene's `AutoencoderIntervention` state dict uses the prefix `"autoencoder."`).
    /// `source` names the file in errors.
    pub fn from_state_dict(
        tensors: &HashMap<String, Tensor>,
        prefix: &str,
        source: &str,
    ) -> Result<Self> {
        let get = |name: &'static str| -> Result<Part<'static>> {
            let key = format!("{prefix}{name}");
            tensors
                .get(&key)
                .cloned()
                .map(|t| Part::new(name, t))
                .ok_or_else(|| AutoencoderError::MissingTensor {
                    file: source.to_string(),
                    tensor: key,
                })
        };
        Self::from_parts(
            source,
            [
                get(ENCODER_WEIGHT)?,
                get(ENCODER_BIAS)?,
                get(DECODER_WEIGHT)?,
                get(DECODER_BIAS)?,
            ],
        )
    }

    /// `parts` in the order encoder weight, encoder bias, decoder weight, decoder bias, in
    /// pyvene's layout.
    pub(crate) fn from_parts(source: &str, parts: [Part<'_>; 4]) -> Result<Self> {
        // Validate before copying into Vars, so that errors name the caller's tensors.
        let checked = parts
            .each_ref()
            .map(|p| Part::new(p.name, p.tensor.clone()));
        let mut core = LinearSae::new(
            source,
            checked,
            Orient::OutIn,
            Orient::OutIn,
            ActSpec::Relu,
            true,
        )?;
        let [ew, eb, dw, db] = parts;
        let vars = [
            Var::from_tensor(&ew.tensor)?,
            Var::from_tensor(&eb.tensor)?,
            Var::from_tensor(&dw.tensor)?,
            Var::from_tensor(&db.tensor)?,
        ];
        core.rebind(
            vars[0].as_tensor().clone(),
            vars[1].as_tensor().clone(),
            vars[2].as_tensor().clone(),
            vars[3].as_tensor().clone(),
        );
        Ok(Self { core, vars })
    }

    /// The trainable parameters, in the order encoder weight, encoder bias, decoder weight,
    /// decoder bias.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.to_vec()
    }

    /// The state dict under pyvene's names (without prefix): `(name, tensor)` pairs.
    pub fn state_dict(&self) -> Vec<(String, Tensor)> {
        [ENCODER_WEIGHT, ENCODER_BIAS, DECODER_WEIGHT, DECODER_BIAS]
            .iter()
            .zip(self.vars.iter())
            .map(|(n, v)| (n.to_string(), v.as_tensor().detach()))
            .collect()
    }

    /// Encoder weight `[latent_dim, input_dim]`.
    pub fn encoder_weight(&self) -> &Tensor {
        self.core.w_enc()
    }

    /// Encoder bias `[latent_dim]`.
    pub fn encoder_bias(&self) -> &Tensor {
        self.core.b_enc()
    }

    /// Decoder weight `[input_dim, latent_dim]` (column `j` is latent `j`'s direction).
    pub fn decoder_weight(&self) -> &Tensor {
        self.core.w_dec()
    }

    /// Decoder bias `[input_dim]`, also subtracted from the input before encoding.
    pub fn decoder_bias(&self) -> &Tensor {
        self.core.b_dec()
    }

    /// The weights' dtype (the dtype it computes in).
    pub fn dtype(&self) -> DType {
        self.core.dtype()
    }

    /// The weights' device.
    pub fn device(&self) -> &Device {
        self.core.device()
    }

    /// The engine (for training).
    pub(crate) fn core(&self) -> &LinearSae {
        &self.core
    }

    /// Pre-activations `(x - b_dec) @ W_enc^T + b_enc` in the weights' dtype (for training).
    pub fn pre_activations(&self, x: &Tensor) -> Result<Tensor> {
        self.core.pre_activations(x)
    }

    /// A copy with its parameters on `device` in `dtype` (new trainable [`Var`]s; the
    /// originals are left as they are), the dtype it then computes in
    /// ([`crate::Autoencoder::to`] returns it boxed).
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        let core = self.core.to("AutoencoderLayer::to", device, dtype)?;
        Self::from_parts(
            "AutoencoderLayer::to",
            [
                Part::new(ENCODER_WEIGHT, core.w_enc().clone()),
                Part::new(ENCODER_BIAS, core.b_enc().clone()),
                Part::new(DECODER_WEIGHT, core.w_dec().clone()),
                Part::new(DECODER_BIAS, core.b_dec().clone()),
            ],
        )
    }
}

impl_autoencoder_via_core!(AutoencoderLayer, true);
