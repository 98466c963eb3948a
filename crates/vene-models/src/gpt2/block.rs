//! One GPT-2 block: pre-norm attention and MLP with residuals.

use candle_core::Tensor;
use candle_nn::VarBuilder;
use vene_hooks::{Component, Hooks};

use super::attention::Gpt2Attention;
use super::mlp::Gpt2Mlp;
use crate::cache::CacheSlot;
use crate::decoder::DecoderLayer;
use crate::ops::{layer_norm, Positions};
use crate::weights::{self, hook};
use crate::{Gpt2Config, Result};

#[derive(Debug, Clone)]
pub(crate) struct Gpt2Block {
    ln_1: candle_nn::LayerNorm,
    attn: Gpt2Attention,
    ln_2: candle_nn::LayerNorm,
    mlp: Gpt2Mlp,
    layer: usize,
}

impl Gpt2Block {
    /// A copy with every weight passed through `f`.
    pub(crate) fn map_weights(&self, f: weights::MapWeight<'_>) -> Result<Self> {
        Ok(Self {
            ln_1: weights::map_layer_norm(&self.ln_1, f)?,
            attn: self.attn.map_weights(f)?,
            ln_2: weights::map_layer_norm(&self.ln_2, f)?,
            mlp: self.mlp.map_weights(f)?,
            layer: self.layer,
        })
    }

    pub(crate) fn load(vb: &VarBuilder, cfg: &Gpt2Config, layer: usize) -> Result<Self> {
        let eps = cfg.layer_norm_epsilon;
        Ok(Self {
            ln_1: weights::layer_norm(&vb.pp("ln_1"), cfg.n_embd, eps)?,
            attn: Gpt2Attention::load(&vb.pp("attn"), cfg, layer)?,
            ln_2: weights::layer_norm(&vb.pp("ln_2"), cfg.n_embd, eps)?,
            mlp: Gpt2Mlp::load(&vb.pp("mlp"), cfg, layer)?,
            layer,
        })
    }
}

impl DecoderLayer for Gpt2Block {
    type Shared = ();

    fn forward(
        &self,
        x: Tensor,
        _shared: &(),
        pos: &Positions,
        offset: usize,
        cache: CacheSlot<'_>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let l = self.layer;
        let x = hook(hooks, l, Component::BlockInput, offset, x)?;
        let h = hook(
            hooks,
            l,
            Component::AttentionInput,
            offset,
            layer_norm(&x, &self.ln_1)?,
        )?;
        let a = self.attn.forward(&h, pos, offset, cache, hooks)?;
        let x = (x + a)?;
        let h = hook(
            hooks,
            l,
            Component::MlpInput,
            offset,
            layer_norm(&x, &self.ln_2)?,
        )?;
        let m = self.mlp.forward(&h, offset, hooks)?;
        hook(hooks, l, Component::BlockOutput, offset, (x + m)?)
    }
}
