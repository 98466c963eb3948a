//! Qwen2 (`Qwen2ForCausalLM`): Llama's layout with biases on q, k and v (none on the output
//! projection), and optional sliding windows on the upper layers.

use super::llama::llama_like;
use super::{Family, HfConfig};
use crate::decoder::spec::{DecoderSpec, QkvLayout, WeightNames};
use crate::Result;

pub(crate) const FAMILY: Family = Family {
    model_type: "qwen2",
    example: "Qwen/Qwen2.5-0.5B",
    spec,
    names: WeightNames::LLAMA,
    qkv: QkvLayout::Separate,
};

/// Sliding windows of the Qwen families: `layer_types` when given, else layers from
/// `max_window_layers` on slide when `use_sliding_window` is set.
pub(crate) fn qwen_windows(cfg: &HfConfig, n_layers: usize) -> Result<Vec<Option<usize>>> {
    let window = cfg.opt_usize("sliding_window")?;
    let sliding = match cfg.layer_types(n_layers)? {
        Some(t) => t,
        None => {
            let on = cfg.bool_or("use_sliding_window", false)?;
            let from = cfg.opt_usize("max_window_layers")?.unwrap_or(n_layers);
            (0..n_layers).map(|i| on && i >= from).collect()
        }
    };
    Ok(sliding
        .into_iter()
        .map(|sl| if sl { window } else { None })
        .collect())
}

fn spec(cfg: &HfConfig) -> Result<DecoderSpec> {
    let mut s = llama_like(cfg)?;
    s.attention.qkv_bias = true;
    s.attention.out_bias = false;
    s.attention.windows = qwen_windows(cfg, s.attention.windows.len())?;
    Ok(s)
}
