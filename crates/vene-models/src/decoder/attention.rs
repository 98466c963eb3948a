//! Self-attention of every family: q/k/v projections (separate or fused), clipping, q/k
//! norms, rotary embedding, grouped-query attention, scaling, soft-capping, sliding windows,
//! and the hooks at query/key/value output, attention weights, value output and output.

use candle_core::{DType, Tensor, D};
use vene_hooks::{Component, Hooks, Site};
use vene_kernels::AttentionParams;

use super::kernels::kernel_error;
use super::linear::Linear;
use super::norm::Norm;
use super::positions::{mask_scores, Positions};
use super::rotary::RotaryTables;
use crate::cache::{append, CacheSlot};
use crate::weights::hook;
use crate::Result;

/// How q, k, v are produced from the attention input.
#[derive(Debug, Clone)]
pub(crate) enum QkvProj {
    /// Three projections.
    Separate { q: Linear, k: Linear, v: Linear },
    /// One projection whose output is `[q | k | v]`.
    Fused(Linear),
}

/// Query/key norms.
#[derive(Debug, Clone)]
pub(crate) enum QkNorms {
    None,
    /// Over each head (width head_dim).
    PerHead {
        q: Norm,
        k: Norm,
    },
    /// Over the whole projection.
    Whole {
        q: Norm,
        k: Norm,
    },
}

/// One layer's attention.
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    pub qkv: QkvProj,
    pub o: Linear,
    pub qk_norm: QkNorms,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    /// Factor of the scores.
    pub scale: f64,
    pub softcap: Option<f64>,
    pub clip: Option<f64>,
    pub scores_in_f32: bool,
    pub window: Option<usize>,
    pub layer: usize,
}

impl Attention {
    fn split(&self, x: &Tensor, heads: usize) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        Ok(x.reshape((b, t, heads, self.head_dim))?.transpose(1, 2)?)
    }

    fn clip(&self, x: Tensor) -> Result<Tensor> {
        match self.clip {
            Some(c) => Ok(x.clamp(-c, c)?),
            None => Ok(x),
        }
    }

    /// `x` is the (hooked) attention_input `[B, T, d]`; returns the hooked attention_output.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        rotary: Option<&RotaryTables>,
        pos: &Positions,
        offset: usize,
        cache: CacheSlot<'_>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let l = self.layer;
        let (qw, kvw) = (
            self.n_heads * self.head_dim,
            self.n_kv_heads * self.head_dim,
        );
        let (q, k, v) = match &self.qkv {
            QkvProj::Separate { q, k, v } => (q.forward(x)?, k.forward(x)?, v.forward(x)?),
            QkvProj::Fused(p) => {
                let y = p.forward(x)?;
                (
                    y.narrow(2, 0, qw)?,
                    y.narrow(2, qw, kvw)?,
                    y.narrow(2, qw + kvw, kvw)?,
                )
            }
        };
        let q = self.clip(hook(hooks, l, Component::QueryOutput, offset, q)?)?;
        let k = self.clip(hook(hooks, l, Component::KeyOutput, offset, k)?)?;
        let v = self.clip(hook(hooks, l, Component::ValueOutput, offset, v)?)?;
        let (q, k) = match &self.qk_norm {
            QkNorms::Whole { q: qn, k: kn } => (qn.forward(&q)?, kn.forward(&k)?),
            _ => (q, k),
        };
        let mut q = self.split(&q, self.n_heads)?;
        let mut k = self.split(&k, self.n_kv_heads)?;
        let v = self.split(&v, self.n_kv_heads)?.contiguous()?;
        if let QkNorms::PerHead { q: qn, k: kn } = &self.qk_norm {
            q = qn.forward(&q)?;
            k = kn.forward(&k)?;
        }
        if let Some(r) = rotary {
            q = r.apply(&q)?;
            k = r.apply(&k)?;
        }
        let (q, k) = (q.contiguous()?, k.contiguous()?);
        let (k, v) = append(cache, k, v)?;
        let n_rep = self.n_heads / self.n_kv_heads;
        let k = candle_transformers::utils::repeat_kv(k, n_rep)?.contiguous()?;
        let v = candle_transformers::utils::repeat_kv(v, n_rep)?.contiguous()?;
        let dtype = v.dtype();
        let (q, k) = if self.scores_in_f32 {
            (q.to_dtype(DType::F32)?, k.to_dtype(DType::F32)?)
        } else {
            (q, k)
        };
        let out = if q.dtype() == DType::F32 && dtype == DType::F32 {
            // vene-kernels: fused on the CPU (the probabilities are only formed when hooked).
            let params = AttentionParams {
                scale: self.scale,
                softcap: self.softcap,
                mask: pos.mask(self.window),
            };
            if hooks.is_active(Site::new(l, Component::AttentionWeight)) {
                let probs = vene_kernels::attention_probs(&q, &k, &params).map_err(kernel_error)?;
                let probs = hook(hooks, l, Component::AttentionWeight, offset, probs)?;
                vene_kernels::attention_values(&probs, &v).map_err(kernel_error)?
            } else {
                vene_kernels::attention(&q, &k, &v, &params).map_err(kernel_error)?
            }
        } else {
            self.scores_and_values(&q, &k, &v, pos, offset, hooks)?
        };
        let out = hook(hooks, l, Component::AttentionValueOutput, offset, out)?;
        let out = self.o.forward(&out)?;
        hook(hooks, l, Component::AttentionOutput, offset, out)
    }

    /// The candle composition for dtypes other than f32 (scores in the dtype of q, the
    /// softmax in f32 as HF does); returns the merged heads `[B, T, H * hd]`.
    fn scores_and_values(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        pos: &Positions,
        offset: usize,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let (b, _, t, _) = q.dims4()?;
        let dtype = v.dtype();
        let mut scores = q.matmul(&k.t()?)?;
        if self.scale != 1.0 {
            scores = (scores * self.scale)?;
        }
        if let Some(cap) = self.softcap {
            scores = ((scores / cap)?.tanh()? * cap)?;
        }
        let scores = mask_scores(&scores, pos.mask(self.window))?;
        // HF runs the softmax in f32.
        let probs = softmax_last_dim(&scores.to_dtype(DType::F32)?)?.to_dtype(dtype)?;
        let probs = hook(hooks, self.layer, Component::AttentionWeight, offset, probs)?;
        Ok(probs
            .matmul(v)?
            .transpose(1, 2)?
            .reshape((b, t, self.n_heads * self.head_dim))?)
    }

    pub(crate) fn map(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        let qkv = match &self.qkv {
            QkvProj::Separate { q, k, v } => QkvProj::Separate {
                q: q.map(f)?,
                k: k.map(f)?,
                v: v.map(f)?,
            },
            QkvProj::Fused(p) => QkvProj::Fused(p.map(f)?),
        };
        let qk_norm = match &self.qk_norm {
            QkNorms::None => QkNorms::None,
            QkNorms::PerHead { q, k } => QkNorms::PerHead {
                q: q.map(f)?,
                k: k.map(f)?,
            },
            QkNorms::Whole { q, k } => QkNorms::Whole {
                q: q.map(f)?,
                k: k.map(f)?,
            },
        };
        Ok(Self {
            qkv,
            o: self.o.map(f)?,
            qk_norm,
            ..self.clone()
        })
    }
}

/// Softmax over the last dimension (fused unless tracked by autograd).
fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if x.track_op() {
        Ok(candle_nn::ops::softmax(x, D::Minus1)?)
    } else {
        Ok(candle_nn::ops::softmax_last_dim(&x.contiguous()?)?)
    }
}
