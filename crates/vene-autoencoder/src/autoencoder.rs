//! The `Autoencoder` trait: what any autoencoder must provide to be intervened on.

use candle_core::{DType, Device, Tensor};

use crate::Result;

/// An autoencoder over activations of width [`Autoencoder::input_dim`] with a latent space of
/// width [`Autoencoder::latent_dim`] (pyvene's `AutoencoderLayerBase`).
///
/// `encode` maps `[..., input_dim]` to `[..., latent_dim]`; `decode` maps back. Inputs of any
/// leading shape are accepted. The trait is object safe: interventions hold a
/// `Box<dyn Autoencoder>` or an `Arc<dyn Autoencoder>`, so users bring their own.
pub trait Autoencoder: Send + Sync + std::fmt::Debug {
    /// Width of the activations it encodes.
    fn input_dim(&self) -> usize;
    /// Width of the latent space.
    fn latent_dim(&self) -> usize;
    /// Latents of `x` `[..., input_dim]`: `[..., latent_dim]`, in `x`'s dtype.
    fn encode(&self, x: &Tensor) -> Result<Tensor>;
    /// Reconstruction of `z` `[..., latent_dim]`: `[..., input_dim]`, in `z`'s dtype.
    fn decode(&self, z: &Tensor) -> Result<Tensor>;

    /// `decode(encode(x))`, and the latent when `return_latent` is set.
    fn forward(&self, x: &Tensor, return_latent: bool) -> Result<(Tensor, Option<Tensor>)> {
        let z = self.encode(x)?;
        let recon = self.decode(&z)?;
        Ok((recon, return_latent.then_some(z)))
    }

    /// Latents of `x` at the selected latent indices only: `[..., dims.len()]`.
    ///
    /// The default encodes everything and selects; autoencoders whose encoder is elementwise
    /// after one linear map (all of this crate's) override it to compute only those columns,
    /// so the cost grows with `dims.len()`, not with `latent_dim`.
    fn encode_selected(&self, x: &Tensor, dims: &[usize]) -> Result<Tensor> {
        let z = self.encode(x)?;
        let idx = Tensor::from_vec(
            dims.iter().map(|&d| d as u32).collect::<Vec<_>>(),
            dims.len(),
            z.device(),
        )?;
        Ok(z.index_select(&idx, z.rank() - 1)?)
    }

    /// Rows of the decoder for the selected latents, `[dims.len(), input_dim]`, when decoding
    /// is affine (`decode(z) = z @ W_dec + b_dec`), else `None` (the default).
    ///
    /// With it, an edit of a few latents becomes a rank-`dims.len()` correction of the
    /// reconstruction: `decode(z') = decode(z) + (z'[dims] - z[dims]) @ rows`.
    fn decoder_rows(&self, dims: &[usize]) -> Result<Option<Tensor>> {
        let _ = dims;
        Ok(None)
    }

    /// What it takes to save this autoencoder and rebuild it with
    /// [`crate::autoencoder_from_state`], or `None` (the default) for autoencoders vene does
    /// not know how to rebuild.
    fn state(&self) -> Result<Option<AutoencoderState>> {
        Ok(None)
    }

    /// A copy with every tensor on `device` in `dtype` (the dtype it then computes in;
    /// inputs of any dtype are still accepted and answered in their own dtype).
    ///
    /// All of this crate's autoencoders (and so every loader's output) implement it. The
    /// default is an error naming the type: a custom autoencoder that holds tensors must
    /// implement it to be moved (one without tensors can return a clone of itself).
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use vene_autoencoder::{Autoencoder, AutoencoderLayer};
    /// let ae: Box<dyn Autoencoder> = Box::new(AutoencoderLayer::new(4, 8, DType::F32, &Device::Cpu)?);
    /// let half = ae.to(&Device::Cpu, DType::BF16)?;
    /// assert_eq!(half.placement().map(|(_, d)| d), Some(DType::BF16));
    /// # Ok::<(), vene_autoencoder::AutoencoderError>(())
    /// ```
    fn to(&self, device: &Device, dtype: DType) -> Result<Box<dyn Autoencoder>> {
        let _ = (device, dtype);
        Err(crate::AutoencoderError::InvalidArgument(format!(
            "this autoencoder ({self:?}) cannot be moved to another device or dtype: \
             implement Autoencoder::to for it"
        )))
    }

    /// The device and dtype of its weights, when it has any and knows them (default `None`).
    fn placement(&self) -> Option<(Device, DType)> {
        None
    }
}

/// Everything needed to rebuild a saved autoencoder: its kind, its settings and its tensors.
#[derive(Debug, Clone)]
pub struct AutoencoderState {
    /// `"relu"`, `"topk"` or `"jumprelu"`.
    pub kind: String,
    /// Settings beyond the tensors: `apply_b_dec_to_input`, `k` for TopK, and `layout`
    /// (`{"W_enc": "in_out" | "out_in", "W_dec": ...}`; both `in_out` when absent).
    pub settings: serde_json::Value,
    /// The tensors by SAELens's names: `W_enc`, `b_enc [L]`, `W_dec`, `b_dec [d]`, and
    /// `threshold [L]` for JumpReLU. Each matrix is in the layout it is stored in (kept so
    /// that a rebuilt autoencoder computes bit for bit the same): `in_out` is SAELens's
    /// (`W_enc [d, L]`, `W_dec [L, d]`), `out_in` torch `nn.Linear`'s (`[L, d]`, `[d, L]`).
    pub tensors: Vec<(String, Tensor)>,
}
