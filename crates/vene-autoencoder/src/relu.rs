//! `ReluAutoencoder`: the standard ReLU SAE in SAELens's layout.

use candle_core::Tensor;

use crate::core::{
    impl_autoencoder_via_core, impl_sae_options, saelens_parts, ActSpec, LinearSae, Part,
};
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
            None,
        )
    }

    /// A transcoder (SAELens `transcoder`): reads activations of width `d_in` and predicts
    /// another site's of width `d_out`. `W_enc [d_in, L]`, `b_enc [L]`, `W_dec [L, d_out]`,
    /// `b_dec [d_out]`; `encode(x) = relu(x @ W_enc + b_enc)` (`b_dec` is never subtracted:
    /// it has the output's width), `decode(z) = z @ W_dec + b_dec`.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use vene_autoencoder::{Autoencoder, ReluAutoencoder};
    ///
    /// let dev = Device::Cpu;
    /// // d_in = 2, L = 1, d_out = 3
    /// let tc = ReluAutoencoder::transcoder(
    ///     Tensor::new(&[[1f32], [1.]], &dev)?,
    ///     Tensor::zeros(1, DType::F32, &dev)?,
    ///     Tensor::new(&[[1f32, 2., 3.]], &dev)?,
    ///     Tensor::zeros(3, DType::F32, &dev)?,
    /// )?;
    /// assert_eq!((tc.input_dim(), tc.output_dim()), (2, 3));
    /// let (y, _) = tc.forward(&Tensor::new(&[[1f32, 2.]], &dev)?, false)?;
    /// assert_eq!(y.to_vec2::<f32>()?, vec![vec![3.0, 6.0, 9.0]]);
    /// # Ok::<(), vene_autoencoder::AutoencoderError>(())
    /// ```
    pub fn transcoder(w_enc: Tensor, b_enc: Tensor, w_dec: Tensor, b_dec: Tensor) -> Result<Self> {
        let d_in = w_enc.dims().first().copied().unwrap_or(0);
        Self::from_parts(
            "ReluAutoencoder::transcoder",
            saelens_parts(w_enc, b_enc, w_dec, b_dec),
            Orient::InOut,
            Orient::InOut,
            Some(d_in),
        )
    }

    /// `parts`: W_enc, b_enc, W_dec, b_dec with the given orientations; `input_dim` for a
    /// transcoder (`b_dec` is then not subtracted), `None` for an autoencoder.
    pub(crate) fn from_parts(
        source: &str,
        parts: [Part<'_>; 4],
        enc_orient: Orient,
        dec_orient: Orient,
        input_dim: Option<usize>,
    ) -> Result<Self> {
        let subtract = input_dim.is_none();
        let core = LinearSae::with_widths(
            source,
            parts,
            enc_orient,
            dec_orient,
            ActSpec::Relu,
            subtract,
            input_dim,
        )?;
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
impl_sae_options!(ReluAutoencoder);
