//! The supported families: each turns an HF `config.json` into a [`DecoderSpec`]. The
//! registry below maps `model_type` to its family; adding a family is one new file here and
//! one line in [`FAMILIES`].

mod config;
mod gemma;
mod gemma2;
pub(crate) mod gpt2;
mod gpt_neo;
mod gpt_neox;
pub(crate) mod llama;
mod mistral;
mod module_paths;
mod olmo;
mod olmo2;
mod qwen2;
mod qwen3;

use serde_json::Value;

pub(crate) use config::HfConfig;
pub use module_paths::{module_path, module_path_component, site_for_model};

use crate::decoder::spec::{
    Activation, DecoderSpec, PositionEncoding, QkvLayout, RopeScaling, WeightNames,
};
use crate::{ModelError, Result};

/// A family: its `model_type`, an example hub id, its config reader, and the names and q/k/v
/// layout of its modules (for pyvene's module-path components).
pub(crate) struct Family {
    pub model_type: &'static str,
    pub example: &'static str,
    pub spec: fn(&HfConfig) -> Result<DecoderSpec>,
    pub names: WeightNames,
    pub qkv: QkvLayout,
}

/// Every supported family, keyed by HF `model_type`.
pub(crate) const FAMILIES: &[Family] = &[
    gpt2::FAMILY,
    llama::FAMILY,
    mistral::FAMILY,
    gemma::FAMILY,
    gemma2::FAMILY,
    qwen2::FAMILY,
    qwen3::FAMILY,
    gpt_neox::FAMILY,
    gpt_neo::FAMILY,
    olmo::FAMILY,
    olmo2::FAMILY,
];

/// The `model_type`s vene runs, each with an example hub id.
///
/// ```
/// let types = vene_models::supported_model_types();
/// assert!(types.iter().any(|(t, _)| *t == "gemma2"));
/// ```
pub fn supported_model_types() -> Vec<(&'static str, &'static str)> {
    FAMILIES.iter().map(|f| (f.model_type, f.example)).collect()
}

fn names() -> String {
    FAMILIES
        .iter()
        .map(|f| f.model_type)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The spec of the model an HF `config.json` describes.
pub(crate) fn spec_from_config(config: &Value) -> Result<DecoderSpec> {
    let model_type = config
        .get("model_type")
        .and_then(|v| v.as_str())
        .ok_or_else(|| ModelError::InvalidConfig("config has no 'model_type'".to_string()))?;
    let family = FAMILIES
        .iter()
        .find(|f| f.model_type == model_type)
        .ok_or_else(|| {
            ModelError::InvalidConfig(format!(
                "model_type '{model_type}' is not supported (supported: {})",
                names()
            ))
        })?;
    let spec = (family.spec)(&HfConfig::new(config, family.model_type))?;
    validate(&spec)?;
    Ok(spec)
}

/// Largest sizes a config may ask for (far above any released model; they keep a corrupt or
/// hostile config from asking for absurd allocations).
pub(crate) const MAX_LAYERS: usize = 1 << 12;
pub(crate) const MAX_WIDTH: usize = 1 << 20;
pub(crate) const MAX_VOCAB: usize = 1 << 24;
pub(crate) const MAX_HEADS: usize = 1 << 12;
/// Most weight elements a randomly initialised model may have (2^32, 16 GiB in f32).
pub(crate) const MAX_RANDOM_PARAMS: usize = 1 << 32;

/// Checks that a spec describes a model the decoder can build.
pub(crate) fn validate(s: &DecoderSpec) -> Result<()> {
    let bad = |msg: String| {
        Err(ModelError::InvalidConfig(format!(
            "{}: {msg}",
            s.model_type
        )))
    };
    for (name, v, max) in [
        ("vocab_size", s.vocab_size, MAX_VOCAB),
        ("hidden_size", s.hidden_size, MAX_WIDTH),
        ("num_hidden_layers", s.n_layers, MAX_LAYERS),
        ("num_attention_heads", s.n_heads, MAX_HEADS),
        ("num_key_value_heads", s.n_kv_heads, MAX_HEADS),
        ("head_dim", s.head_dim, MAX_WIDTH),
        ("intermediate_size", s.intermediate_size, MAX_WIDTH),
    ] {
        if v == 0 || v > max {
            return bad(format!("{name} = {v} is out of range (1..={max})"));
        }
    }
    if s.n_heads.checked_rem(s.n_kv_heads) != Some(0) {
        return bad(format!(
            "num_attention_heads {} is not a multiple of num_key_value_heads {}",
            s.n_heads, s.n_kv_heads
        ));
    }
    if s.n_heads
        .checked_mul(s.head_dim)
        .is_none_or(|w| w > MAX_WIDTH)
    {
        return bad(format!(
            "{} heads of width {} are too wide",
            s.n_heads, s.head_dim
        ));
    }
    match &s.positions {
        PositionEncoding::Rotary(r) => {
            if r.dims == 0 || r.dims % 2 == 1 || r.dims > s.head_dim {
                return bad(format!(
                    "rotary dims {} must be even and within head_dim {}",
                    r.dims, s.head_dim
                ));
            }
            if !(r.theta.is_finite() && r.theta > 0.0) {
                return bad(format!("rope_theta {} must be positive", r.theta));
            }
            if r.max_positions == 0 {
                return bad("max_position_embeddings must be positive".to_string());
            }
        }
        PositionEncoding::Learned { max_positions } => {
            if *max_positions == 0 || *max_positions > MAX_VOCAB {
                return bad(format!("max_positions {max_positions} is out of range"));
            }
        }
    }
    if s.attention.windows.len() != s.n_layers {
        return bad(format!(
            "{} sliding-window entries for {} layers",
            s.attention.windows.len(),
            s.n_layers
        ));
    }
    let sizes: std::collections::BTreeSet<usize> =
        s.attention.windows.iter().flatten().copied().collect();
    if sizes.contains(&0) {
        return bad("a sliding window of 0 keys".to_string());
    }
    if sizes.len() > 1 {
        return bad(format!(
            "layers use different sliding windows {sizes:?}: not supported"
        ));
    }
    for (name, v) in [
        ("attention softcap", s.attention.softcap),
        ("final softcap", s.head.final_softcap),
        ("clip_qkv", s.attention.clip_qkv),
    ] {
        if let Some(v) = v {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} {v} must be positive"));
            }
        }
    }
    if !s.attention.scale.is_finite() {
        return bad("attention scale is not finite".to_string());
    }
    Ok(())
}

/// Refuses random models too large to allocate.
pub(crate) fn check_random_size(s: &DecoderSpec) -> Result<()> {
    let too_big = || {
        ModelError::InvalidConfig(format!(
            "{}: a random model of this size would have more than {MAX_RANDOM_PARAMS} weights",
            s.model_type
        ))
    };
    let d = s.hidden_size;
    let per_layer = [
        d.checked_mul(s.q_width()),
        d.checked_mul(s.kv_width()).and_then(|x| x.checked_mul(2)),
        d.checked_mul(s.q_width()),
        d.checked_mul(s.intermediate_size)
            .and_then(|x| x.checked_mul(3)),
    ]
    .into_iter()
    .try_fold(0usize, |acc, x| x.and_then(|x| acc.checked_add(x)))
    .ok_or_else(too_big)?;
    let total = per_layer
        .checked_mul(s.n_layers)
        .and_then(|x| x.checked_add(s.vocab_size.checked_mul(d)?.checked_mul(2)?))
        .ok_or_else(too_big)?;
    if total > MAX_RANDOM_PARAMS {
        return Err(too_big());
    }
    Ok(())
}

/// The activation named by `key`, or `default`.
pub(crate) fn activation(cfg: &HfConfig, keys: &[&str], default: &str) -> Result<Activation> {
    let name = keys
        .iter()
        .find_map(|k| cfg.opt_str(k).ok().flatten())
        .unwrap_or(default);
    Activation::from_hf(name).ok_or_else(|| {
        cfg.error(format!(
            "activation '{name}' is not supported (supported: {})",
            Activation::SUPPORTED
        ))
    })
}

/// `rope_scaling` of an HF config.
pub(crate) fn rope_scaling(cfg: &HfConfig) -> Result<RopeScaling> {
    let Some(rs) = cfg.value.get("rope_scaling").filter(|v| !v.is_null()) else {
        return Ok(RopeScaling::None);
    };
    let kind = rs
        .get("rope_type")
        .or_else(|| rs.get("type"))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let num = |k: &str| -> Result<f64> {
        rs.get(k)
            .and_then(|v| v.as_f64())
            .ok_or_else(|| cfg.error(format!("rope_scaling '{kind}' needs a number '{k}'")))
    };
    Ok(match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: num("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")?,
        },
        other => {
            return Err(cfg.error(format!(
                "rope_scaling type '{other}' is not supported (default, linear, llama3)"
            )))
        }
    })
}
