//! OLMo (`OlmoForCausalLM`): Llama's layout with non-parametric layer norms (eps 1e-5, no
//! weights in the checkpoint) and q/k/v clamped to `clip_qkv`.

use super::llama::llama_like;
use super::{Family, HfConfig};
use crate::decoder::spec::{DecoderSpec, NormKind, QkvLayout, WeightNames};
use crate::Result;

pub(crate) const FAMILY: Family = Family {
    model_type: "olmo",
    example: "allenai/OLMo-1B-hf",
    spec,
    names: WeightNames::LLAMA,
    qkv: QkvLayout::Separate,
};

fn spec(cfg: &HfConfig) -> Result<DecoderSpec> {
    let mut s = llama_like(cfg)?;
    // transformers hard-codes the eps; the config's is not read.
    s.norm = NormKind::LayerNormNoParams { eps: 1e-5 };
    s.attention.clip_qkv = cfg.opt_f64("clip_qkv")?;
    Ok(s)
}
