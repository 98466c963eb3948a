//! Gemma (`GemmaForCausalLM`): Llama's layout with `(1 + w)` RMSNorm, the embedding scaled by
//! `sqrt(hidden_size)`, an independent `head_dim`, GeGLU and a tied head.

use super::llama::llama_like;
use super::{activation, Family, HfConfig};
use crate::decoder::spec::{DecoderSpec, NormKind, QkvLayout, WeightNames};
use crate::Result;

pub(crate) const FAMILY: Family = Family {
    model_type: "gemma",
    example: "google/gemma-2b",
    spec,
    names: WeightNames::LLAMA,
    qkv: QkvLayout::Separate,
};

/// The parts Gemma and Gemma 2 share.
pub(crate) fn gemma_base(cfg: &HfConfig, act_keys: &[&str]) -> Result<DecoderSpec> {
    let mut s = llama_like(cfg)?;
    s.norm = NormKind::GemmaRmsNorm {
        eps: cfg.f64_or("rms_norm_eps", 1e-6)?,
    };
    s.head.embed_scale = Some((s.hidden_size as f64).sqrt());
    s.head.tied = cfg.bool_or("tie_word_embeddings", true)?;
    s.mlp.activation = activation(cfg, act_keys, "gelu_pytorch_tanh")?;
    Ok(s)
}

fn spec(cfg: &HfConfig) -> Result<DecoderSpec> {
    // transformers' Gemma (v1) reads `hidden_act` and ignores `hidden_activation`.
    gemma_base(cfg, &["hidden_act"])
}
