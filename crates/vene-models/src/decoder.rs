//! The forward pass shared by the decoder-only models (GPT-2, Llama): input checks, KV-cache
//! bookkeeping, positions and masks, the layer loop, and the LM head. Each model supplies only
//! its own math (embeddings, layers, final norm) through [`Decoder`] and [`DecoderLayer`].

use candle_core::Tensor;
use vene_hooks::Hooks;

use crate::cache::{CacheSlot, KvCache};
use crate::inputs::check_ids;
use crate::ops::{positions, Positions};
use crate::{LanguageModel, Result};

/// One decoder layer.
pub(crate) trait DecoderLayer {
    /// Values the model computes once per pass for every layer (Llama: rotary `cos`, `sin`).
    type Shared;

    /// Runs the layer on the residual stream `x` `[B, T, d]` of the new tokens, calling the
    /// hooks of its components with `seq_offset` = `offset` (the number of cached tokens).
    fn forward(
        &self,
        x: Tensor,
        shared: &Self::Shared,
        pos: &Positions,
        offset: usize,
        cache: CacheSlot<'_>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor>;
}

/// The architecture-specific parts of a decoder-only language model; [`run`] does the rest.
pub(crate) trait Decoder: LanguageModel {
    /// The type of the model's layers.
    type Layer: DecoderLayer;

    /// The layers, in order.
    fn layers(&self) -> &[Self::Layer];

    /// The `[vocab, hidden]` output projection.
    fn lm_head(&self) -> &Tensor;

    /// Rejects a sequence of `len` tokens (cached plus new) the model cannot take.
    fn check_len(&self, _len: usize) -> Result<()> {
        Ok(())
    }

    /// The residual stream entering the first layer for `ids` `[B, T]` (u32, on the model's
    /// device), with the per-pass values the layers share.
    fn embed(
        &self,
        ids: &Tensor,
        pos: &Positions,
    ) -> Result<(Tensor, <Self::Layer as DecoderLayer>::Shared)>;

    /// The norm applied to the output of the last layer.
    fn final_norm(&self, x: &Tensor) -> Result<Tensor>;
}

/// Logits `[B, T, vocab]` for `input_ids` `[B, T]`, after the tokens in `cache` when given (the
/// cache is then extended with the new tokens); `mask` as in
/// [`LanguageModel::forward_cached`].
pub(crate) fn run<M: Decoder>(
    model: &M,
    input_ids: &Tensor,
    mask: Option<&Tensor>,
    mut cache: Option<&mut KvCache>,
    hooks: &mut dyn Hooks,
) -> Result<Tensor> {
    let (ids, b, t) = check_ids(input_ids, model.vocab_size())?;
    let layers = model.layers();
    let offset = match cache.as_deref() {
        Some(c) => {
            c.check(layers.len(), b)?;
            c.len()
        }
        None => 0,
    };
    model.check_len(offset + t)?;
    let device = model.device();
    let ids = ids.to_device(device)?;
    let mask = match mask {
        Some(m) => Some(m.to_device(device)?),
        None => None,
    };
    let pos = positions(b, t, offset, mask.as_ref(), device)?;
    let (mut x, shared) = model.embed(&ids, &pos)?;
    for (i, layer) in layers.iter().enumerate() {
        let slot = cache.as_deref_mut().and_then(|c| c.layer_mut(i));
        x = layer.forward(x, &shared, &pos, offset, slot, hooks)?;
    }
    let x = model.final_norm(&x)?;
    let logits = x
        .reshape((b * t, model.hidden_size()))?
        .matmul(&model.lm_head().t()?)?;
    if let Some(c) = cache {
        c.advance(t);
    }
    Ok(logits.reshape((b, t, model.vocab_size()))?)
}
