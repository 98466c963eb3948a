//! Llama self-attention: q/k/v projections, RoPE, grouped-query attention, `o_proj`.

use candle_core::{DType, Tensor};
use candle_nn::{Linear, Module, VarBuilder};
use vene_hooks::{Component, Hooks};

use crate::cache::{append, CacheSlot};
use crate::ops::{mask_scores, rope, softmax_last_dim, Positions};
use crate::weights::{hook, linear_no_bias};
use crate::{LlamaConfig, Result};

#[derive(Debug, Clone)]
pub(crate) struct LlamaAttention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    n_head: usize,
    n_kv: usize,
    head_dim: usize,
    layer: usize,
}

impl LlamaAttention {
    /// A copy with every weight passed through `f`.
    pub(crate) fn map_weights(&self, f: crate::weights::MapWeight<'_>) -> Result<Self> {
        use crate::weights::map_linear;
        Ok(Self {
            q: map_linear(&self.q, f)?,
            k: map_linear(&self.k, f)?,
            v: map_linear(&self.v, f)?,
            o: map_linear(&self.o, f)?,
            ..self.clone()
        })
    }

    pub(crate) fn load(vb: &VarBuilder, cfg: &LlamaConfig, layer: usize, std: f64) -> Result<Self> {
        let d = cfg.hidden_size;
        let (n_head, n_kv) = (cfg.num_attention_heads, cfg.num_key_value_heads());
        let head_dim = d / n_head;
        Ok(Self {
            q: linear_no_bias(&vb.pp("q_proj"), d, n_head * head_dim, std)?,
            k: linear_no_bias(&vb.pp("k_proj"), d, n_kv * head_dim, std)?,
            v: linear_no_bias(&vb.pp("v_proj"), d, n_kv * head_dim, std)?,
            o: linear_no_bias(&vb.pp("o_proj"), n_head * head_dim, d, std)?,
            n_head,
            n_kv,
            head_dim,
            layer,
        })
    }

    fn split(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// `x` is the (hooked) attention_input; `cos`/`sin` are in the activation dtype.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        pos: &Positions,
        offset: usize,
        cache: CacheSlot<'_>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let l = self.layer;
        let q = hook(hooks, l, Component::QueryOutput, offset, self.q.forward(x)?)?;
        let k = hook(hooks, l, Component::KeyOutput, offset, self.k.forward(x)?)?;
        let v = hook(hooks, l, Component::ValueOutput, offset, self.v.forward(x)?)?;
        let q = rope(&self.split(&q, self.n_head)?, cos, sin)?;
        let k = rope(&self.split(&k, self.n_kv)?, cos, sin)?;
        let v = self.split(&v, self.n_kv)?;
        let (k, v) = append(cache, k, v)?;
        let n_rep = self.n_head / self.n_kv;
        let k = candle_transformers::utils::repeat_kv(k, n_rep)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, n_rep)?.contiguous()?;
        let scale = (self.head_dim as f64).powf(-0.5);
        let scores = (q.matmul(&k.t()?)? * scale)?;
        let scores = mask_scores(&scores, pos.allowed.as_ref())?;
        // HF upcasts the softmax to f32.
        let dtype = scores.dtype();
        let probs = softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
        let out =
            probs
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, t, self.n_head * self.head_dim))?;
        let out = hook(hooks, l, Component::AttentionValueOutput, offset, out)?;
        let out = self.o.forward(&out)?;
        hook(hooks, l, Component::AttentionOutput, offset, out)
    }
}
