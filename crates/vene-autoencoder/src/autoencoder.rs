//! The `Autoencoder` trait: what any autoencoder must provide to be intervened on.

use candle_core::{DType, Device, Tensor};

use crate::Result;

/// An autoencoder over activations of width [`Autoencoder::input_dim`] with a latent space of
/// width [`Autoencoder::latent_dim`] (pyvene's `AutoencoderLayerBase`).
///
/// `encode` maps `[..., input_dim]` to `[..., latent_dim]`; `decode` maps back (to
/// `[..., output_dim]`, which differs from `input_dim` only for a transcoder). Inputs of any
/// leading shape are accepted. The trait is object safe: interventions hold a
/// `Box<dyn Autoencoder>` or an `Arc<dyn Autoencoder>`, so users bring their own.
///
/// **Input-dependent reconstructions.** Some SAEs reconstruct from more than the latent:
/// with input normalisation ([`crate::InputNormalization`]) the reconstruction is
/// un-normalised with the input's own statistics, and a skip connection adds `x @ W_skip^T`.
/// For them `decode(z)` is only the part that depends on `z` (`z @ W_dec + b_dec`, in the
/// normalised space, without the skip term), and [`Autoencoder::decode_for`] is the
/// reconstruction of `z` *as the reconstruction of input `x`*. An interchange intervention
/// (swap some latents of a base with a source's, then decode) decodes the edited latent with
/// `decode_for(z', base)`: the base's statistics and skip term, the source's latents.
pub trait Autoencoder: Send + Sync + std::fmt::Debug {
    /// Width of the activations it encodes.
    fn input_dim(&self) -> usize;
    /// Width of the latent space.
    fn latent_dim(&self) -> usize;
    /// Latents of `x` `[..., input_dim]`: `[..., latent_dim]`, in `x`'s dtype.
    fn encode(&self, x: &Tensor) -> Result<Tensor>;
    /// Reconstruction of `z` `[..., latent_dim]`: `[..., output_dim]`, in `z`'s dtype. For an
    /// autoencoder whose reconstruction depends on the input (see the trait's docs), only the
    /// part that depends on `z`: use [`Autoencoder::decode_for`] for the reconstruction.
    fn decode(&self, z: &Tensor) -> Result<Tensor>;

    /// Width of the reconstruction: `input_dim` (the default) except for a transcoder, which
    /// reads one site and predicts another.
    fn output_dim(&self) -> usize {
        self.input_dim()
    }

    /// `z` decoded as the reconstruction of the input `x` (`z`: `[..., latent_dim]`, `x`:
    /// `[..., input_dim]`, the same leading shape): `x`'s normalisation statistics undone and
    /// its skip term added, when the autoencoder has them. The default is `decode(z)`, right
    /// for every autoencoder whose reconstruction depends on `z` alone.
    ///
    /// `decode_for(encode(x), x)` is the autoencoder's reconstruction of `x`.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use vene_autoencoder::{Autoencoder, InputNormalization, ReluAutoencoder};
    ///
    /// let dev = Device::Cpu;
    /// let eye = Tensor::eye(2, DType::F32, &dev)?;
    /// let zeros = Tensor::zeros(2, DType::F32, &dev)?;
    /// let sae = ReluAutoencoder::from_tensors(eye.clone(), zeros.clone(), eye, zeros)?
    ///     .with_input_normalization(InputNormalization::ConstantNormRescale);
    /// // x = [3, 4]: norm 5, scaled to norm sqrt(2); the latent is x * sqrt(2) / 5.
    /// let x = Tensor::new(&[[3f32, 4.]], &dev)?;
    /// let z = sae.encode(&x)?;
    /// // decode_for undoes the scale: the reconstruction is x again.
    /// let y = sae.decode_for(&z, &x)?.to_vec2::<f32>()?;
    /// assert!((y[0][0] - 3.0).abs() < 1e-5 && (y[0][1] - 4.0).abs() < 1e-5);
    /// # Ok::<(), vene_autoencoder::AutoencoderError>(())
    /// ```
    fn decode_for(&self, z: &Tensor, x: &Tensor) -> Result<Tensor> {
        let _ = x;
        self.decode(z)
    }

    /// The per-row factor `[..., 1]` by which [`Autoencoder::decode_for`] scales a change of
    /// the latent for input `x` (the input's standard deviation under layer norm), or `None`
    /// (the default) when it does not scale it. With [`Autoencoder::decoder_rows`]:
    /// `decode_for(z', x) = decode_for(z, x) + ((z' - z)[dims] @ rows) * scale`.
    fn decode_scale_for(&self, x: &Tensor) -> Result<Option<Tensor>> {
        let _ = x;
        Ok(None)
    }

    /// `decode_for(encode(x), x)`, and the latent when `return_latent` is set.
    fn forward(&self, x: &Tensor, return_latent: bool) -> Result<(Tensor, Option<Tensor>)> {
        let z = self.encode(x)?;
        let recon = self.decode_for(&z, x)?;
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

    /// Rows of the decoder for the selected latents, `[dims.len(), output_dim]`, when decoding
    /// is affine in the latent (`decode(z) = z @ W_dec + b_dec`), else `None` (the default).
    ///
    /// With it, an edit of a few latents becomes a rank-`dims.len()` correction of the
    /// reconstruction: `decode_for(z', x) = decode_for(z, x) + s * ((z'[dims] - z[dims]) @
    /// rows)`, with `s` from [`Autoencoder::decode_scale_for`] (1 when it is `None`). An
    /// autoencoder that returns rows promises this identity.
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
    /// `"relu"`, `"topk"`, `"jumprelu"` or `"gated"`.
    pub kind: String,
    /// Settings beyond the tensors: `apply_b_dec_to_input`, `k` for TopK,
    /// `normalize_activations` (`layer_norm` or `constant_norm_rescale`; none when absent),
    /// and `layout` (`{"W_enc": "in_out" | "out_in", "W_dec": ...}`; both `in_out` when
    /// absent).
    pub settings: serde_json::Value,
    /// The tensors by SAELens's names: `W_enc`, `b_enc [L]`, `W_dec`, `b_dec [d_out]`,
    /// `threshold [L]` for JumpReLU, `b_gate`, `r_mag`, `b_mag [L]` (instead of `b_enc`) for
    /// a gated SAE, and `W_skip [d_out, d_in]` for a skip connection. A transcoder's widths
    /// are read from `W_enc` (input) and `b_dec` (output). Each matrix is in the layout it is
    /// stored in (kept so that a rebuilt autoencoder computes bit for bit the same): `in_out`
    /// is SAELens's
    /// (`W_enc [d, L]`, `W_dec [L, d]`), `out_in` torch `nn.Linear`'s (`[L, d]`, `[d, L]`).
    pub tensors: Vec<(String, Tensor)>,
}
