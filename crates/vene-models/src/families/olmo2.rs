//! OLMo 2 (`Olmo2ForCausalLM`): no pre-norms; RMS norms after attention and MLP, and over the
//! whole query and key projections (before the head split and RoPE).

use super::llama::llama_like;
use super::{Family, HfConfig};
use crate::decoder::spec::{BlockNorms, DecoderSpec, QkNorm, QkvLayout, WeightNames};
use crate::Result;

pub(crate) const FAMILY: Family = Family {
    model_type: "olmo2",
    example: "allenai/OLMo-2-0425-1B",
    spec,
    names: WeightNames::LLAMA,
    qkv: QkvLayout::Separate,
};

fn spec(cfg: &HfConfig) -> Result<DecoderSpec> {
    let mut s = llama_like(cfg)?;
    s.block_norms = BlockNorms {
        attn_pre: false,
        attn_post: true,
        mlp_pre: false,
        mlp_post: true,
    };
    s.attention.qk_norm = QkNorm::Whole;
    Ok(s)
}
