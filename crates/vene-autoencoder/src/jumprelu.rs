//! `JumpReLUAutoencoder`: Gemma Scope's JumpReLU sparse autoencoder.

use candle_core::Tensor;

use crate::core::{
    impl_autoencoder_via_core, impl_sae_options, saelens_parts, ActSpec, LinearSae, Part,
};
use crate::util::Orient;
use crate::Result;

/// A JumpReLU SAE in Gemma Scope's layout: `W_enc [d, L]`, `b_enc [L]`, `W_dec [L, d]`,
/// `b_dec [d]`, `threshold [L]`.
///
/// `pre = x @ W_enc + b_enc`, `encode(x) = relu(pre) * (pre > threshold)` (Gemma Scope does not
/// subtract `b_dec` from the input; SAELens's `apply_b_dec_to_input` turns that on, see
/// [`JumpReLUAutoencoder::with_apply_b_dec_to_input`]); `decode(z) = z @ W_dec + b_dec`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_autoencoder::{Autoencoder, JumpReLUAutoencoder};
///
/// let dev = Device::Cpu;
/// // d = 2, L = 2: latent 0 reads x0, latent 1 reads x1; threshold 0.5 on both.
/// let eye = Tensor::new(&[[1f32, 0.], [0., 1.]], &dev)?;
/// let zeros = Tensor::zeros(2, candle_core::DType::F32, &dev)?;
/// let thr = Tensor::new(&[0.5f32, 0.5], &dev)?;
/// let sae = JumpReLUAutoencoder::from_tensors(eye.clone(), zeros.clone(), eye, zeros, thr)?;
/// let z = sae.encode(&Tensor::new(&[[0.4f32, 0.9]], &dev)?)?;
/// assert_eq!(z.to_vec2::<f32>()?, vec![vec![0.0, 0.9]]);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
#[derive(Debug, Clone)]
pub struct JumpReLUAutoencoder {
    core: LinearSae,
}

impl JumpReLUAutoencoder {
    /// Builds one from its tensors in Gemma Scope's layout (checked: shapes, dtypes, finite).
    pub fn from_tensors(
        w_enc: Tensor,
        b_enc: Tensor,
        w_dec: Tensor,
        b_dec: Tensor,
        threshold: Tensor,
    ) -> Result<Self> {
        Self::from_parts(
            "JumpReLUAutoencoder::from_tensors",
            saelens_parts(w_enc, b_enc, w_dec, b_dec),
            Part::new("threshold", threshold),
            Orient::InOut,
            Orient::InOut,
            None,
        )
    }

    /// `parts`: W_enc, b_enc, W_dec, b_dec, with the given orientations; `threshold` `[L]`;
    /// `input_dim` for a transcoder (SAELens `jumprelu_transcoder`), `None` for an SAE.
    pub(crate) fn from_parts(
        source: &str,
        parts: [Part<'_>; 4],
        threshold: Part<'_>,
        enc_orient: Orient,
        dec_orient: Orient,
        input_dim: Option<usize>,
    ) -> Result<Self> {
        let act = ActSpec::JumpRelu(threshold);
        let core =
            LinearSae::with_widths(source, parts, enc_orient, dec_orient, act, false, input_dim)?;
        Ok(Self { core })
    }

    /// Subtract `b_dec` from the input before encoding (SAELens `apply_b_dec_to_input`).
    pub fn with_apply_b_dec_to_input(mut self, on: bool) -> Self {
        self.core.set_subtract_b_dec(on);
        self
    }

    /// Whether `b_dec` is subtracted from the input before encoding.
    pub fn apply_b_dec_to_input(&self) -> bool {
        self.core.subtract_b_dec()
    }

    /// The thresholds `[latent_dim]`.
    pub fn threshold(&self) -> Option<&Tensor> {
        self.core.threshold()
    }

    /// Encoder weight (`[d, L]` when built by [`JumpReLUAutoencoder::from_tensors`]).
    pub fn w_enc(&self) -> &Tensor {
        self.core.w_enc()
    }

    /// Decoder weight (`[L, d]` when built by [`JumpReLUAutoencoder::from_tensors`]).
    pub fn w_dec(&self) -> &Tensor {
        self.core.w_dec()
    }

    /// Encoder bias `[L]`.
    pub fn b_enc(&self) -> &Tensor {
        self.core.b_enc()
    }

    /// Decoder bias `[d]`.
    pub fn b_dec(&self) -> &Tensor {
        self.core.b_dec()
    }

    /// A copy with every tensor on `device` in `dtype`, the dtype it then computes in
    /// ([`crate::Autoencoder::to`] returns it boxed). An overflowing cast is an
    /// [`crate::AutoencoderError::NonFinite`].
    pub fn to(&self, device: &candle_core::Device, dtype: candle_core::DType) -> Result<Self> {
        Ok(Self {
            core: self.core.to("JumpReLUAutoencoder::to", device, dtype)?,
        })
    }
}

impl_autoencoder_via_core!(JumpReLUAutoencoder, true);
impl_sae_options!(JumpReLUAutoencoder);
