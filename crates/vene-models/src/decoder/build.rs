//! Building the decoder's parts from a [`DecoderSpec`] and a `VarBuilder` (weight files, or a
//! `VarMap` that creates missing weights with HF's init).

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};

use super::attention::{Attention, QkNorms, QkvProj};
use super::block::Block;
use super::linear::Linear;
use super::mlp::Mlp;
use super::norm::Norm;
use super::spec::{DecoderSpec, NormKind, QkNorm, QkvLayout, WeightNames};
use crate::weights::{get, normal};
use crate::Result;

/// Reads the weights of one spec.
pub(crate) struct Builder<'a> {
    pub spec: &'a DecoderSpec,
    /// Under the base model's prefix (or the root for a bare base-model checkpoint).
    pub base: VarBuilder<'a>,
    /// The root (for `lm_head`).
    pub root: VarBuilder<'a>,
}

impl<'a> Builder<'a> {
    pub(crate) fn new(spec: &'a DecoderSpec, root: VarBuilder<'a>) -> Self {
        let n = &spec.names;
        let prefixed = format!("{}.{}.weight", n.prefix, n.embed);
        let bare = format!("{}.weight", n.embed);
        let base = if !root.contains_tensor(&prefixed) && root.contains_tensor(&bare) {
            root.clone()
        } else {
            root.pp(n.prefix)
        };
        Self { spec, base, root }
    }

    fn names(&self) -> &WeightNames {
        &self.spec.names
    }

    /// A linear layer `d_in → d_out` named `name` under `vb`.
    fn linear(
        &self,
        vb: &VarBuilder,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        std: f64,
    ) -> Result<Linear> {
        let vb = vb.pp(name);
        let conv1d = self.names().conv1d;
        let shape = if conv1d { (d_in, d_out) } else { (d_out, d_in) };
        let w = get(&vb, shape, "weight", normal(std))?;
        let b = if bias {
            Some(get(&vb, d_out, "bias", Init::Const(0.0))?)
        } else {
            None
        };
        Ok(Linear::new(w, b, conv1d))
    }

    /// A norm of width `width` named `name` under `vb`.
    fn norm(&self, vb: &VarBuilder, name: &str, width: usize) -> Result<Norm> {
        let kind = self.spec.norm;
        let device = vb.device();
        let vb = vb.pp(name);
        match kind {
            NormKind::LayerNormNoParams { .. } => Norm::new(kind, None, None, width, device),
            NormKind::LayerNorm { .. } => {
                let w = get(&vb, width, "weight", Init::Const(1.0))?;
                let b = get(&vb, width, "bias", Init::Const(0.0))?;
                Norm::new(kind, Some(w), Some(b), width, device)
            }
            NormKind::RmsNorm { .. } => {
                let w = get(&vb, width, "weight", Init::Const(1.0))?;
                Norm::new(kind, Some(w), None, width, device)
            }
            NormKind::GemmaRmsNorm { .. } => {
                let w = get(&vb, width, "weight", Init::Const(0.0))?;
                Norm::new(kind, Some(w), None, width, device)
            }
        }
    }

    fn opt_norm(
        &self,
        vb: &VarBuilder,
        present: bool,
        name: &str,
        width: usize,
    ) -> Result<Option<Norm>> {
        if present {
            Ok(Some(self.norm(vb, name, width)?))
        } else {
            Ok(None)
        }
    }

    /// The q/k norms of one layer.
    fn qk_norms(&self, vb: &VarBuilder) -> Result<QkNorms> {
        let s = self.spec;
        let n = self.names();
        // q/k norms are RMS norms whatever the block norms are.
        let rms = |name: &str, width: usize| -> Result<Norm> {
            let kind = match s.norm {
                NormKind::RmsNorm { eps } | NormKind::GemmaRmsNorm { eps } => {
                    NormKind::RmsNorm { eps }
                }
                NormKind::LayerNorm { eps } | NormKind::LayerNormNoParams { eps } => {
                    NormKind::RmsNorm { eps }
                }
            };
            let w = get(&vb.pp(name), width, "weight", Init::Const(1.0))?;
            Norm::new(kind, Some(w), None, width, vb.device())
        };
        Ok(match s.attention.qk_norm {
            QkNorm::None => QkNorms::None,
            QkNorm::PerHead => QkNorms::PerHead {
                q: rms(n.q_norm, s.head_dim)?,
                k: rms(n.k_norm, s.head_dim)?,
            },
            QkNorm::Whole => QkNorms::Whole {
                q: rms(n.q_norm, s.q_width())?,
                k: rms(n.k_norm, s.kv_width())?,
            },
        })
    }

    fn qkv(&self, vb: &VarBuilder) -> Result<QkvProj> {
        let s = self.spec;
        let n = self.names();
        let (d, qw, kvw) = (s.hidden_size, s.q_width(), s.kv_width());
        let (bias, std) = (s.attention.qkv_bias, s.init_std);
        Ok(match s.attention.qkv {
            QkvLayout::Separate => QkvProj::Separate {
                q: self.linear(vb, n.q, d, qw, bias, std)?,
                k: self.linear(vb, n.k, d, kvw, bias, std)?,
                v: self.linear(vb, n.v, d, kvw, bias, std)?,
            },
            QkvLayout::Fused => QkvProj::Fused(self.linear(vb, n.q, d, qw + 2 * kvw, bias, std)?),
            QkvLayout::FusedPerHead => {
                // Stored per head as [q_h | k_h | v_h]: reorder the rows to [q | k | v].
                let vbq = vb.pp(n.q);
                let (h, hd) = (s.n_heads, s.head_dim);
                let w = get(&vbq, (3 * h * hd, d), "weight", normal(std))?;
                let w = w
                    .reshape((h, 3, hd, d))?
                    .transpose(0, 1)?
                    .reshape((3 * h * hd, d))?
                    .contiguous()?;
                let b = if bias {
                    let b = get(&vbq, 3 * h * hd, "bias", Init::Const(0.0))?;
                    Some(
                        b.reshape((h, 3, hd))?
                            .transpose(0, 1)?
                            .reshape(3 * h * hd)?
                            .contiguous()?,
                    )
                } else {
                    None
                };
                QkvProj::Fused(Linear::new(w, b, false))
            }
        })
    }

    /// Layer `layer`.
    pub(crate) fn block(&self, layer: usize) -> Result<Block> {
        let s = self.spec;
        let n = self.names();
        let vb = self.base.pp(format!("{}.{layer}", n.layers));
        let d = s.hidden_size;
        let (std, layers) = (s.init_std, s.n_layers as f64);
        // GPT-2 initialises the projections back into the residual stream smaller.
        let out_std = if n.conv1d {
            std / (2.0 * layers).sqrt()
        } else {
            std
        };
        let a = &s.attention;
        let mut scale = a.scale;
        if a.scale_by_inverse_layer {
            scale /= (layer + 1) as f64;
        }
        let attn = Attention {
            qkv: self.qkv(&vb)?,
            o: self.linear(&vb, n.o, s.q_width(), d, a.out_bias, out_std)?,
            qk_norm: self.qk_norms(&vb)?,
            n_heads: s.n_heads,
            n_kv_heads: s.n_kv_heads,
            head_dim: s.head_dim,
            scale,
            softcap: a.softcap,
            clip: a.clip_qkv,
            scores_in_f32: a.scores_in_f32,
            window: s.window(layer),
            layer,
        };
        let (m, ff) = (&s.mlp, s.intermediate_size);
        let mlp = Mlp {
            up: self.linear(&vb, n.up, d, ff, m.bias, std)?,
            gate: if m.gated {
                Some(self.linear(&vb, n.gate, d, ff, m.bias, std)?)
            } else {
                None
            },
            down: self.linear(&vb, n.down, ff, d, m.bias, out_std)?,
            activation: m.activation,
            layer,
        };
        let bn = s.block_norms;
        Ok(Block {
            attn_pre: self.opt_norm(&vb, bn.attn_pre, n.attn_pre_norm, d)?,
            attn,
            attn_post: self.opt_norm(&vb, bn.attn_post, n.attn_post_norm, d)?,
            mlp_pre: self.opt_norm(&vb, bn.mlp_pre, n.mlp_pre_norm, d)?,
            mlp,
            mlp_post: self.opt_norm(&vb, bn.mlp_post, n.mlp_post_norm, d)?,
            residual: s.residual,
            layer,
        })
    }

    /// The token embedding `[vocab, hidden]`.
    pub(crate) fn embed(&self) -> Result<Tensor> {
        let s = self.spec;
        get(
            &self.base.pp(s.names.embed),
            (s.vocab_size, s.hidden_size),
            "weight",
            normal(s.init_std),
        )
    }

    /// The learned position table, for families that have one.
    pub(crate) fn pos_embed(&self) -> Result<Option<Tensor>> {
        let s = self.spec;
        match (s.names.pos_embed, s.max_positions()) {
            (Some(name), Some(n)) => Ok(Some(get(
                &self.base.pp(name),
                (n, s.hidden_size),
                "weight",
                normal(s.init_std),
            )?)),
            _ => Ok(None),
        }
    }

    /// The final norm.
    pub(crate) fn final_norm(&self) -> Result<Norm> {
        self.norm(
            &self.base,
            self.spec.names.final_norm,
            self.spec.hidden_size,
        )
    }

    /// The output head `[vocab, hidden]` (the embedding when tied).
    pub(crate) fn lm_head(&self, embed: &Tensor) -> Result<Tensor> {
        let s = self.spec;
        if s.head.tied {
            return Ok(embed.clone());
        }
        get(
            &self.root.pp(s.names.lm_head),
            (s.vocab_size, s.hidden_size),
            "weight",
            normal(s.init_std),
        )
    }
}
