//! Gemma 2 (`Gemma2ForCausalLM`): Gemma plus norms after attention and MLP, scores scaled by
//! `query_pre_attn_scalar^-0.5` and soft-capped, sliding-window layers, final soft-capping.

use super::gemma::gemma_base;
use super::{Family, HfConfig};
use crate::decoder::spec::{BlockNorms, DecoderSpec, QkvLayout, WeightNames};
use crate::Result;

pub(crate) const FAMILY: Family = Family {
    model_type: "gemma2",
    example: "google/gemma-2-2b",
    spec,
    names: WeightNames::LLAMA,
    qkv: QkvLayout::Separate,
};

fn spec(cfg: &HfConfig) -> Result<DecoderSpec> {
    let mut s = gemma_base(cfg, &["hidden_activation", "hidden_act"])?;
    s.block_norms = BlockNorms {
        attn_pre: true,
        attn_post: true,
        mlp_pre: true,
        mlp_post: true,
    };
    s.names = WeightNames {
        mlp_pre_norm: "pre_feedforward_layernorm",
        ..WeightNames::LLAMA
    };
    let scalar = cfg.f64_or("query_pre_attn_scalar", s.head_dim as f64)?;
    if scalar.is_nan() || scalar <= 0.0 {
        return Err(cfg.error(format!("query_pre_attn_scalar {scalar} must be positive")));
    }
    s.attention.scale = scalar.powf(-0.5);
    s.attention.softcap = cfg.opt_f64("attn_logit_softcapping")?;
    s.head.final_softcap = cfg.opt_f64("final_logit_softcapping")?;
    let window = cfg.opt_usize("sliding_window")?;
    // `layer_types`, else even layers slide (transformers' default).
    let sliding = match cfg.layer_types(s.n_layers)? {
        Some(t) => t,
        None => (0..s.attention.windows.len()).map(|i| i % 2 == 0).collect(),
    };
    s.attention.windows = sliding
        .into_iter()
        .map(|sl| if sl { window } else { None })
        .collect();
    Ok(s)
}
