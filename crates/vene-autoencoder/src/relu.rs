//! `ReluAutoencoder`: the standard ReLU SAE in SAELens's layout.

use candle_core::Tensor;

use crate::core::{impl_autoencoder_via_core, saelens_parts, ActSpec, LinearSae, Part};
use crate::util::Orient;
use crate::Result;

/// A standard ReLU SAE (SAELens `standard`): `W_enc [d, L]`, `b_enc [L]`, `W_dec [L, d]`,
/// `b_dec [d]`; `encode(x) = relu((x - b_dec) @ W_enc + b_enc)` (the subtraction only with
/// `apply_b_dec_to_input`, on by default), `decode(z) = z @ W_dec + b_dec`.
///
/// The math equals [`crate::AutoencoderLayer`]'s with transposed weights; this type holds the
/// weights as loaded (not as trainable `Var`s) and can turn the subtraction off.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_autoencoder::{Autoencoder, ReluAutoencoder};
///
/// let dev = Device::Cpu;
/// let w = Tensor::new(&[[1f32, -1.]], &dev)?; // d = 1, L = 2
/// let sae = ReluAutoencoder::from_tensors(
///     w.clone(),
///     Tensor::zeros(2, DType::F32, &dev)?,
///     w.t()?,
///     Tensor::zeros(1, DType::F32, &dev)?,
/// )?;
/// let z = sae.encode(&Tensor::new(&[[2f32]], &dev)?)?;
/// assert_eq!(z.to_vec2::<f32>()?, vec![vec![2.0, 0.0]]);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ReluAutoencoder {
    core: LinearSae,
}

impl ReluAutoencoder {
    /// Builds one from `W_enc [d, L]`, `b_enc [L]`, `W_dec [L, d]`, `b_dec [d]` (checked).
    pub fn from_tensors(
        w_enc: Tensor,
        b_enc: Tensor,
        w_dec: Tensor,
        b_dec: Tensor,
    ) -> Result<Self> {
        Self::from_parts(
            "ReluAutoencoder::from_tensors",
            saelens_parts(w_enc, b_enc, w_dec, b_dec),
            Orient::InOut,
            Orient::InOut,
        )
    }

    /// `parts`: W_enc, b_enc, W_dec, b_dec with the given orientations.
    pub(crate) fn from_parts(
        source: &str,
        parts: [Part<'_>; 4],
        enc_orient: Orient,
        dec_orient: Orient,
    ) -> Result<Self> {
        let core = LinearSae::new(source, parts, enc_orient, dec_orient, ActSpec::Relu, true)?;
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

    /// A copy with every tensor on `device` in `dtype`, the dtype it then computes in
    /// ([`crate::Autoencoder::to`] returns it boxed). An overflowing cast is an
    /// [`crate::AutoencoderError::NonFinite`].
    pub fn to(&self, device: &candle_core::Device, dtype: candle_core::DType) -> Result<Self> {
        Ok(Self {
            core: self.core.to("ReluAutoencoder::to", device, dtype)?,
        })
    }
}

impl_autoencoder_via_core!(ReluAutoencoder, true);
