//! `GatedAutoencoder`: the gated SAE (Rajamanoharan et al. 2024) of SAELens and
//! dictionary_learning.

use candle_core::Tensor;

use crate::core::{impl_autoencoder_via_core, impl_sae_options, ActSpec, LinearSae, Part};
use crate::util::Orient;
use crate::Result;

/// A gated SAE: a gate and a magnitude path sharing one encoder matrix.
///
/// With `x_c = x - b_dec` (the subtraction with `apply_b_dec_to_input`, on by default, as in
/// both SAELens `gated` and dictionary_learning's `GatedAutoEncoder`) and `h = x_c @ W_enc`:
///
/// `encode(x) = 1[h + b_gate > 0] * relu(h * exp(r_mag) + b_mag)`,
/// `decode(z) = z @ W_dec + b_dec`.
///
/// SAELens writes the magnitude path as `x_c @ (W_enc * exp(r_mag)) + b_mag`, the same up to
/// rounding. The gate is a hard step at inference. Every latent depends only on its own
/// column, so [`crate::Autoencoder::encode_selected`] computes only the columns asked for, and
/// decoding is affine ([`crate::Autoencoder::decoder_rows`]).
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_autoencoder::{Autoencoder, GatedAutoencoder};
///
/// let dev = Device::Cpu;
/// let eye = Tensor::eye(2, DType::F32, &dev)?;
/// let zeros = Tensor::zeros(2, DType::F32, &dev)?;
/// let sae = GatedAutoencoder::from_tensors(
///     eye.clone(),
///     Tensor::new(&[-1f32, 0.], &dev)?, // b_gate: latent 0 opens only above 1
///     Tensor::new(&[0f32, 2f32.ln()], &dev)?, // r_mag: latent 1's magnitude doubled
///     zeros.clone(), // b_mag
///     eye,
///     zeros,
/// )?;
/// let z = sae.encode(&Tensor::new(&[[0.5f32, 0.75]], &dev)?)?.to_vec2::<f32>()?;
/// assert_eq!(z[0][0], 0.0);
/// assert!((z[0][1] - 1.5).abs() < 1e-6);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
#[derive(Debug, Clone)]
pub struct GatedAutoencoder {
    core: LinearSae,
}

impl GatedAutoencoder {
    /// Builds one from SAELens's tensors: `W_enc [d, L]`, `b_gate [L]`, `r_mag [L]`,
    /// `b_mag [L]`, `W_dec [L, d]`, `b_dec [d]` (checked: shapes, dtypes, finite values).
    pub fn from_tensors(
        w_enc: Tensor,
        b_gate: Tensor,
        r_mag: Tensor,
        b_mag: Tensor,
        w_dec: Tensor,
        b_dec: Tensor,
    ) -> Result<Self> {
        Self::from_parts(
            "GatedAutoencoder::from_tensors",
            [
                Part::new("W_enc", w_enc),
                Part::new("b_gate", b_gate),
                Part::new("W_dec", w_dec),
                Part::new("b_dec", b_dec),
            ],
            [Part::new("r_mag", r_mag), Part::new("b_mag", b_mag)],
            Orient::InOut,
            Orient::InOut,
        )
    }

    /// `parts`: W_enc, b_gate, W_dec, b_dec with the given orientations; `mag`: r_mag, b_mag.
    pub(crate) fn from_parts(
        source: &str,
        parts: [Part<'_>; 4],
        mag: [Part<'_>; 2],
        enc_orient: Orient,
        dec_orient: Orient,
    ) -> Result<Self> {
        let [r_mag, b_mag] = mag;
        let act = ActSpec::Gated { r_mag, b_mag };
        let core = LinearSae::new(source, parts, enc_orient, dec_orient, act, true)?;
        Ok(Self { core })
    }

    /// Subtract `b_dec` from the input before encoding (on by default; SAELens
    /// `apply_b_dec_to_input`).
    pub fn with_apply_b_dec_to_input(mut self, on: bool) -> Self {
        self.core.set_subtract_b_dec(on);
        self
    }

    /// Whether `b_dec` is subtracted from the input before encoding.
    pub fn apply_b_dec_to_input(&self) -> bool {
        self.core.subtract_b_dec()
    }

    /// Encoder weight (`[d, L]` when built by [`GatedAutoencoder::from_tensors`]).
    pub fn w_enc(&self) -> &Tensor {
        self.core.w_enc()
    }

    /// The gate bias `[L]`.
    pub fn b_gate(&self) -> &Tensor {
        self.core.b_enc()
    }

    /// The magnitude path's log-scale `r_mag [L]`.
    pub fn r_mag(&self) -> &Tensor {
        self.core
            .gated_params()
            .map(|(r, _)| r)
            .unwrap_or_else(|| self.core.b_enc())
    }

    /// The magnitude bias `[L]`.
    pub fn b_mag(&self) -> &Tensor {
        self.core
            .gated_params()
            .map(|(_, b)| b)
            .unwrap_or_else(|| self.core.b_enc())
    }

    /// Decoder weight (`[L, d]` when built by [`GatedAutoencoder::from_tensors`]).
    pub fn w_dec(&self) -> &Tensor {
        self.core.w_dec()
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
            core: self.core.to("GatedAutoencoder::to", device, dtype)?,
        })
    }
}

impl_autoencoder_via_core!(GatedAutoencoder, true);
impl_sae_options!(GatedAutoencoder);
