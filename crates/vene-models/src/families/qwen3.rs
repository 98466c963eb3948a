//! Qwen3 (`Qwen3ForCausalLM`): Llama's layout with an RMS norm on each query and key head
//! (before RoPE) and an independent `head_dim`.

use super::llama::llama_like;
use super::qwen2::qwen_windows;
use super::{Family, HfConfig};
use crate::decoder::spec::{DecoderSpec, QkNorm, QkvLayout, WeightNames};
use crate::Result;

pub(crate) const FAMILY: Family = Family {
    model_type: "qwen3",
    example: "Qwen/Qwen3-0.6B",
    spec,
    names: WeightNames::LLAMA,
    qkv: QkvLayout::Separate,
};

fn spec(cfg: &HfConfig) -> Result<DecoderSpec> {
    let mut s = llama_like(cfg)?;
    s.attention.qk_norm = QkNorm::PerHead;
    s.attention.windows = qwen_windows(cfg, s.attention.windows.len())?;
    Ok(s)
}
