//! `TopKAutoencoder`: a TopK sparse autoencoder (EleutherAI sparsify, SAELens `topk`).

use candle_core::Tensor;

use crate::core::{
    impl_autoencoder_via_core, impl_sae_options, saelens_parts, ActSpec, LinearSae, Part,
};
use crate::util::Orient;
use crate::Result;

/// A TopK SAE: `encode(x) = topk_k(relu((x - b_dec) @ W_enc + b_enc))` (all but the `k` largest
/// latents of each row set to zero), `decode(z) = z @ W_dec + b_dec`.
///
/// [`TopKAutoencoder::from_tensors`] takes `W_enc [d, L]`, `b_enc [L]`, `W_dec [L, d]`,
/// `b_dec [d]`. Ties at the k-th value are broken by the sort order, as in torch.
/// [`crate::Autoencoder::encode_selected`] still computes every latent (TopK needs them all).
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_autoencoder::{Autoencoder, TopKAutoencoder};
///
/// let dev = Device::Cpu;
/// let eye = Tensor::new(&[[1f32, 0., 0.], [0., 1., 0.], [0., 0., 1.]], &dev)?;
/// let zeros = Tensor::zeros(3, DType::F32, &dev)?;
/// let sae = TopKAutoencoder::from_tensors(eye.clone(), zeros.clone(), eye, zeros, 1)?;
/// let z = sae.encode(&Tensor::new(&[[0.2f32, 0.7, 0.5]], &dev)?)?;
/// assert_eq!(z.to_vec2::<f32>()?, vec![vec![0.0, 0.7, 0.0]]);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
#[derive(Debug, Clone)]
pub struct TopKAutoencoder {
    core: LinearSae,
    k: usize,
}

impl TopKAutoencoder {
    /// Builds one from `W_enc [d, L]`, `b_enc [L]`, `W_dec [L, d]`, `b_dec [d]` and `k`
    /// (`1 <= k <= L`).
    pub fn from_tensors(
        w_enc: Tensor,
        b_enc: Tensor,
        w_dec: Tensor,
        b_dec: Tensor,
        k: usize,
    ) -> Result<Self> {
        Self::from_parts(
            "TopKAutoencoder::from_tensors",
            saelens_parts(w_enc, b_enc, w_dec, b_dec),
            Orient::InOut,
            Orient::InOut,
            k,
        )
    }

    /// `parts`: W_enc, b_enc, W_dec, b_dec with the given orientations.
    pub(crate) fn from_parts(
        source: &str,
        parts: [Part<'_>; 4],
        enc_orient: Orient,
        dec_orient: Orient,
        k: usize,
    ) -> Result<Self> {
        let core = LinearSae::new(
            source,
            parts,
            enc_orient,
            dec_orient,
            ActSpec::TopK(k),
            true,
        )?;
        Ok(Self { core, k })
    }

    /// [`Self::from_parts`] for a transcoder reading width `input_dim` (`b_dec`, of the
    /// output's width, is not subtracted).
    pub(crate) fn transcoder_from_parts(
        source: &str,
        parts: [Part<'_>; 4],
        enc_orient: Orient,
        dec_orient: Orient,
        k: usize,
        input_dim: usize,
    ) -> Result<Self> {
        let core = LinearSae::with_widths(
            source,
            parts,
            enc_orient,
            dec_orient,
            ActSpec::TopK(k),
            false,
            Some(input_dim),
        )?;
        Ok(Self { core, k })
    }

    /// Subtract `b_dec` from the input before encoding (on by default; SAELens
    /// `apply_b_dec_to_input`).
    pub fn with_apply_b_dec_to_input(mut self, on: bool) -> Self {
        self.core.set_subtract_b_dec(on);
        self
    }

    /// How many latents are kept per row.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Encoder weight (`[d, L]` when built by [`TopKAutoencoder::from_tensors`]).
    pub fn w_enc(&self) -> &Tensor {
        self.core.w_enc()
    }

    /// Decoder weight (`[L, d]` when built by [`TopKAutoencoder::from_tensors`]).
    pub fn w_dec(&self) -> &Tensor {
        self.core.w_dec()
    }

    /// A copy with every tensor on `device` in `dtype`, the dtype it then computes in
    /// ([`crate::Autoencoder::to`] returns it boxed). An overflowing cast is an
    /// [`crate::AutoencoderError::NonFinite`].
    pub fn to(&self, device: &candle_core::Device, dtype: candle_core::DType) -> Result<Self> {
        Ok(Self {
            core: self.core.to("TopKAutoencoder::to", device, dtype)?,
            k: self.k,
        })
    }
}

impl_autoencoder_via_core!(TopKAutoencoder, true);
impl_sae_options!(TopKAutoencoder);
