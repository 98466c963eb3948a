//! One Llama decoder layer: RMS-normed attention and MLP with residuals.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use vene_hooks::{Component, Hooks};

use super::attention::LlamaAttention;
use super::mlp::LlamaMlp;
use crate::cache::CacheSlot;
use crate::decoder::DecoderLayer;
use crate::ops::{rms_norm, Positions};
use crate::weights::{self, hook};
use crate::{LlamaConfig, Result};

#[derive(Debug, Clone)]
pub(crate) struct LlamaBlock {
    input_layernorm: candle_nn::RmsNorm,
    attn: LlamaAttention,
    post_attention_layernorm: candle_nn::RmsNorm,
    mlp: LlamaMlp,
    layer: usize,
}

impl LlamaBlock {
    /// A copy with every weight passed through `f`.
    pub(crate) fn map_weights(&self, f: weights::MapWeight<'_>) -> Result<Self> {
        Ok(Self {
            input_layernorm: weights::map_rms_norm(&self.input_layernorm, f)?,
            attn: self.attn.map_weights(f)?,
            post_attention_layernorm: weights::map_rms_norm(&self.post_attention_layernorm, f)?,
            mlp: self.mlp.map_weights(f)?,
            layer: self.layer,
        })
    }

    pub(crate) fn load(vb: &VarBuilder, cfg: &LlamaConfig, layer: usize, std: f64) -> Result<Self> {
        let (d, eps) = (cfg.hidden_size, cfg.rms_norm_eps);
        Ok(Self {
            input_layernorm: weights::rms_norm(&vb.pp("input_layernorm"), d, eps)?,
            attn: LlamaAttention::load(&vb.pp("self_attn"), cfg, layer, std)?,
            post_attention_layernorm: weights::rms_norm(
                &vb.pp("post_attention_layernorm"),
                d,
                eps,
            )?,
            mlp: LlamaMlp::load(&vb.pp("mlp"), cfg, layer, std)?,
            layer,
        })
    }
}

impl DecoderLayer for LlamaBlock {
    /// Rotary `cos`, `sin` in the activation dtype.
    type Shared = (Tensor, Tensor);

    fn forward(
        &self,
        x: Tensor,
        (cos, sin): &(Tensor, Tensor),
        pos: &Positions,
        offset: usize,
        cache: CacheSlot<'_>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let l = self.layer;
        let x = hook(hooks, l, Component::BlockInput, offset, x)?;
        let h = rms_norm(&x, &self.input_layernorm)?;
        let h = hook(hooks, l, Component::AttentionInput, offset, h)?;
        let a = self.attn.forward(&h, cos, sin, pos, offset, cache, hooks)?;
        let x = (x + a)?;
        let h = rms_norm(&x, &self.post_attention_layernorm)?;
        let h = hook(hooks, l, Component::MlpInput, offset, h)?;
        let m = self.mlp.forward(&h, offset, hooks)?;
        hook(hooks, l, Component::BlockOutput, offset, (x + m)?)
    }
}
