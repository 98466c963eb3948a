//! Llama (`LlamaForCausalLM`): RMSNorm, RoPE (with llama3 scaling), grouped-query attention,
//! SwiGLU. [`llama_like`] reads the config fields the Llama-derived families share.

use candle_transformers::models::llama::{Llama3RopeType, LlamaEosToks};

pub use candle_transformers::models::llama::LlamaConfig;

use super::{activation, rope_scaling, Family, HfConfig};
use crate::decoder::spec::{
    AttentionSpec, BlockNorms, DecoderSpec, HeadSpec, MlpSpec, NormKind, PositionEncoding, QkNorm,
    QkvLayout, Residual, RopeScaling, RotarySpec, WeightNames,
};
use crate::Result;

pub(crate) const FAMILY: Family = Family {
    model_type: "llama",
    example: "meta-llama/Llama-3.2-1B",
    spec: llama_like,
    names: WeightNames::LLAMA,
    qkv: QkvLayout::Separate,
};

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

/// The spec of a Llama-layout model from the fields every Llama-derived config has:
/// sizes, `head_dim` (default hidden / heads), `rms_norm_eps`, `rope_theta`, `rope_scaling`,
/// `hidden_act` (default silu), `attention_bias`, `mlp_bias`, `tie_word_embeddings`
/// (default false), token ids. Families adjust what differs.
pub(crate) fn llama_like(cfg: &HfConfig) -> Result<DecoderSpec> {
    let hidden_size = cfg.usize("hidden_size")?;
    let n_heads = cfg.usize("num_attention_heads")?;
    let n_layers = cfg.usize("num_hidden_layers")?;
    let head_dim = match cfg.opt_usize("head_dim")? {
        Some(hd) => hd,
        None => hidden_size / n_heads.max(1),
    };
    let bias = cfg.bool_or("attention_bias", false)?;
    Ok(DecoderSpec {
        model_type: cfg.model_type.to_string(),
        vocab_size: cfg.usize("vocab_size")?,
        hidden_size,
        n_layers,
        n_heads,
        n_kv_heads: cfg.opt_usize("num_key_value_heads")?.unwrap_or(n_heads),
        head_dim,
        intermediate_size: cfg.usize("intermediate_size")?,
        norm: NormKind::RmsNorm {
            eps: cfg.f64_or("rms_norm_eps", 1e-6)?,
        },
        residual: Residual::Sequential,
        block_norms: BlockNorms::PRE,
        positions: PositionEncoding::Rotary(RotarySpec {
            theta: cfg.f64_or("rope_theta", 10_000.0)?,
            dims: head_dim,
            scaling: rope_scaling(cfg)?,
            max_positions: cfg.opt_usize("max_position_embeddings")?.unwrap_or(2048),
        }),
        attention: AttentionSpec {
            qkv: QkvLayout::Separate,
            qkv_bias: bias,
            out_bias: bias,
            scale: (head_dim as f64).powf(-0.5),
            scale_by_inverse_layer: false,
            softcap: None,
            qk_norm: QkNorm::None,
            clip_qkv: None,
            scores_in_f32: false,
            windows: vec![None; n_layers.min(super::MAX_LAYERS + 1)],
        },
        mlp: MlpSpec {
            gated: true,
            activation: activation(cfg, &["hidden_act"], "silu")?,
            bias: cfg.bool_or("mlp_bias", false)?,
        },
        head: HeadSpec {
            tied: cfg.bool_or("tie_word_embeddings", false)?,
            embed_scale: None,
            final_softcap: None,
        },
        names: WeightNames::LLAMA,
        init_std: cfg.f64_or("initializer_range", 0.02)?,
        bos_token_id: cfg.token("bos_token_id"),
        eos_token_id: cfg.token("eos_token_id"),
    })
}

/// The spec of a typed [`LlamaConfig`] (for [`Model::random_llama`](crate::Model::random_llama)).
pub(crate) fn spec_from_typed(c: &LlamaConfig) -> Result<DecoderSpec> {
    let mut v = serde_json::json!({
        "model_type": "llama",
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "vocab_size": c.vocab_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads(),
        "rms_norm_eps": c.rms_norm_eps,
        "rope_theta": c.rope_theta,
        "tie_word_embeddings": c.tie_word_embeddings.unwrap_or(false),
        "bos_token_id": c.bos_token_id,
    });
    if let Some(eos) = &c.eos_token_id {
        v["eos_token_id"] = match eos {
            LlamaEosToks::Single(t) => serde_json::json!(t),
            LlamaEosToks::Multiple(ts) => serde_json::json!(ts),
        };
    }
    let mut spec = llama_like(&HfConfig::new(&v, "llama"))?;
    if let (Some(s), PositionEncoding::Rotary(r)) = (&c.rope_scaling, &mut spec.positions) {
        if matches!(s.rope_type, Llama3RopeType::Llama3) {
            r.scaling = RopeScaling::Llama3 {
                factor: s.factor as f64,
                low_freq_factor: s.low_freq_factor as f64,
                high_freq_factor: s.high_freq_factor as f64,
                original_max_position_embeddings: s.original_max_position_embeddings as f64,
            };
        }
    }
    super::validate(&spec)?;
    Ok(spec)
}
