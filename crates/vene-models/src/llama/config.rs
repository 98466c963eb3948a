//! Llama configuration: candle's [`LlamaConfig`] (serde of HF `config.json`, with llama3
//! `rope_scaling` and `tie_word_embeddings`), plus helpers.

use std::f32::consts::PI;

pub use candle_transformers::models::llama::LlamaConfig;
use candle_transformers::models::llama::{Llama3RopeConfig, Llama3RopeType};

use crate::{ModelError, Result};

/// A small Llama config (rope theta 10000, eps 1e-6, untied head, 2048 positions).
///
/// ```
/// let cfg = vene_models::llama_config(64, 16, 2, 4, 2, 40);
/// assert_eq!(cfg.num_key_value_heads(), 2);
/// ```
pub fn llama_config(
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: usize,
    intermediate_size: usize,
) -> LlamaConfig {
    LlamaConfig {
        hidden_size,
        intermediate_size,
        vocab_size,
        num_hidden_layers,
        num_attention_heads,
        num_key_value_heads: Some(num_key_value_heads),
        rms_norm_eps: 1e-6,
        rope_theta: 10_000.0,
        bos_token_id: None,
        eos_token_id: None,
        rope_scaling: None,
        max_position_embeddings: 2048,
        tie_word_embeddings: Some(false),
    }
}

/// Checks that a Llama config describes a model vene can build.
pub(crate) fn validate(cfg: &LlamaConfig) -> Result<()> {
    let (h, kv) = (cfg.num_attention_heads, cfg.num_key_value_heads());
    if h == 0 || cfg.hidden_size / h * h != cfg.hidden_size {
        return Err(ModelError::InvalidConfig(format!(
            "hidden_size {} is not divisible by num_attention_heads {h}",
            cfg.hidden_size
        )));
    }
    if kv == 0 || h % kv != 0 {
        return Err(ModelError::InvalidConfig(format!(
            "num_attention_heads {h} is not a multiple of num_key_value_heads {kv}"
        )));
    }
    if (cfg.hidden_size / h) & 1 == 1 {
        return Err(ModelError::InvalidConfig(format!(
            "head_dim {} must be even for rotary embeddings",
            cfg.hidden_size / h
        )));
    }
    if cfg.num_hidden_layers == 0 || cfg.vocab_size == 0 {
        return Err(ModelError::InvalidConfig(
            "num_hidden_layers and vocab_size must be positive".to_string(),
        ));
    }
    Ok(())
}

/// RoPE inverse frequencies as HF computes them (default, or llama3 scaling).
pub(crate) fn inv_freq(cfg: &LlamaConfig) -> Vec<f32> {
    let head_dim = cfg.hidden_size / cfg.num_attention_heads.max(1);
    let base: Vec<f32> = (0..head_dim)
        .step_by(2)
        .map(|i| 1f32 / cfg.rope_theta.powf(i as f32 / head_dim as f32))
        .collect();
    match &cfg.rope_scaling {
        Some(
            s @ Llama3RopeConfig {
                rope_type: Llama3RopeType::Llama3,
                ..
            },
        ) => {
            let old = s.original_max_position_embeddings as f32;
            let low_wavelen = old / s.low_freq_factor;
            let high_wavelen = old / s.high_freq_factor;
            base.into_iter()
                .map(|f| {
                    let wavelen = 2.0 * PI / f;
                    if wavelen < high_wavelen {
                        f
                    } else if wavelen > low_wavelen {
                        f / s.factor
                    } else {
                        let smooth = (old / wavelen - s.low_freq_factor)
                            / (s.high_freq_factor - s.low_freq_factor);
                        (1.0 - smooth) * f / s.factor + smooth * f
                    }
                })
                .collect()
        }
        _ => base,
    }
}
