//! GPT-2 self-attention: one `c_attn` Conv1D split into q, k, v; `c_proj` Conv1D.

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};
use vene_hooks::{Component, Hooks};

use crate::cache::{append, CacheSlot};
use crate::ops::{conv1d_linear, mask_scores, softmax_last_dim, Positions};
use crate::weights::{get, hook, normal};
use crate::{Gpt2Config, Result};

#[derive(Debug, Clone)]
pub(crate) struct Gpt2Attention {
    attn_w: Tensor,
    attn_b: Tensor,
    proj_w: Tensor,
    proj_b: Tensor,
    n_head: usize,
    head_dim: usize,
    scale: f64,
    layer: usize,
}

impl Gpt2Attention {
    /// A copy with every weight passed through `f`.
    pub(crate) fn map_weights(&self, f: crate::weights::MapWeight<'_>) -> Result<Self> {
        Ok(Self {
            attn_w: f(&self.attn_w)?,
            attn_b: f(&self.attn_b)?,
            proj_w: f(&self.proj_w)?,
            proj_b: f(&self.proj_b)?,
            ..self.clone()
        })
    }

    pub(crate) fn load(vb: &VarBuilder, cfg: &Gpt2Config, layer: usize) -> Result<Self> {
        let d = cfg.n_embd;
        let std = cfg.initializer_range;
        let proj_std = std / (2.0 * cfg.n_layer as f64).sqrt();
        let a = vb.pp("c_attn");
        let p = vb.pp("c_proj");
        let head_dim = cfg.head_dim();
        let mut scale = 1.0;
        if cfg.scale_attn_weights {
            scale /= (head_dim as f64).sqrt();
        }
        if cfg.scale_attn_by_inverse_layer_idx {
            scale /= (layer + 1) as f64;
        }
        Ok(Self {
            attn_w: get(&a, (d, 3 * d), "weight", normal(std))?,
            attn_b: get(&a, 3 * d, "bias", Init::Const(0.0))?,
            proj_w: get(&p, (d, d), "weight", normal(proj_std))?,
            proj_b: get(&p, d, "bias", Init::Const(0.0))?,
            n_head: cfg.n_head,
            head_dim,
            scale,
            layer,
        })
    }

    fn split(&self, x: &Tensor) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, self.n_head, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// `x` is the (hooked) attention_input; returns the hooked attention_output.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        pos: &Positions,
        offset: usize,
        cache: CacheSlot<'_>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let (b, t, d) = x.dims3()?;
        let l = self.layer;
        let qkv = conv1d_linear(x, &self.attn_w, &self.attn_b)?;
        let q = hook(
            hooks,
            l,
            Component::QueryOutput,
            offset,
            qkv.narrow(2, 0, d)?,
        )?;
        let k = hook(hooks, l, Component::KeyOutput, offset, qkv.narrow(2, d, d)?)?;
        let v = hook(
            hooks,
            l,
            Component::ValueOutput,
            offset,
            qkv.narrow(2, 2 * d, d)?,
        )?;
        let (q, k, v) = (self.split(&q)?, self.split(&k)?, self.split(&v)?);
        let (k, v) = append(cache, k, v)?;
        let scores = (q.matmul(&k.t()?)? * self.scale)?;
        let scores = mask_scores(&scores, pos.allowed.as_ref())?;
        let probs = softmax_last_dim(&scores)?;
        let probs = hook(hooks, l, Component::AttentionWeight, offset, probs)?;
        let out = probs.matmul(&v)?.transpose(1, 2)?.reshape((b, t, d))?;
        let out = hook(hooks, l, Component::AttentionValueOutput, offset, out)?;
        let out = conv1d_linear(&out, &self.proj_w, &self.proj_b)?;
        hook(hooks, l, Component::AttentionOutput, offset, out)
    }
}
