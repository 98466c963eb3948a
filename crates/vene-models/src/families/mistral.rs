//! Mistral (`MistralForCausalLM`): Llama's layout with a sliding window on every layer.

use super::llama::llama_like;
use super::{Family, HfConfig};
use crate::decoder::spec::{DecoderSpec, QkvLayout, WeightNames};
use crate::Result;

pub(crate) const FAMILY: Family = Family {
    model_type: "mistral",
    example: "mistralai/Mistral-7B-v0.1",
    spec,
    names: WeightNames::LLAMA,
    qkv: QkvLayout::Separate,
};

fn spec(cfg: &HfConfig) -> Result<DecoderSpec> {
    let mut s = llama_like(cfg)?;
    // `sliding_window` (null: full attention) applies to every layer.
    let window = cfg.opt_usize("sliding_window")?;
    s.attention.windows = vec![window; s.attention.windows.len()];
    Ok(s)
}
