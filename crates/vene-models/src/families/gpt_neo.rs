//! GPT-Neo (`GPTNeoForCausalLM`): GPT-2's layout with nn.Linear projections, unscaled scores
//! computed in f32, and alternating global / local (sliding-window) layers.

use super::{activation, Family, HfConfig};
use crate::decoder::spec::{
    AttentionSpec, BlockNorms, DecoderSpec, HeadSpec, MlpSpec, NormKind, PositionEncoding, QkNorm,
    QkvLayout, Residual, WeightNames,
};
use crate::Result;

pub(crate) const FAMILY: Family = Family {
    model_type: "gpt_neo",
    example: "EleutherAI/gpt-neo-125m",
    spec,
    names: NAMES,
    qkv: QkvLayout::Separate,
};

const NAMES: WeightNames = WeightNames {
    prefix: "transformer",
    embed: "wte",
    pos_embed: Some("wpe"),
    layers: "h",
    attn_pre_norm: "ln_1",
    attn_post_norm: "",
    mlp_pre_norm: "ln_2",
    mlp_post_norm: "",
    q: "attn.attention.q_proj",
    k: "attn.attention.k_proj",
    v: "attn.attention.v_proj",
    o: "attn.attention.out_proj",
    q_norm: "",
    k_norm: "",
    gate: "",
    up: "mlp.c_fc",
    down: "mlp.c_proj",
    act: "mlp.act",
    final_norm: "ln_f",
    lm_head: "lm_head",
    conv1d: false,
};

/// `attention_layers`, or `attention_types` (`[[["global", "local"], repeat], ...]`) expanded;
/// true for a local (sliding) layer.
fn local_layers(cfg: &HfConfig, n_layers: usize) -> Result<Vec<bool>> {
    let parse = |v: &serde_json::Value| -> Result<bool> {
        match v.as_str() {
            Some("global") => Ok(false),
            Some("local") => Ok(true),
            _ => Err(cfg.error(format!("unknown attention type {v} (global, local)"))),
        }
    };
    let mut out = Vec::new();
    if let Some(list) = cfg.value.get("attention_layers").and_then(|v| v.as_array()) {
        for v in list.iter().take(n_layers + 1) {
            out.push(parse(v)?);
        }
    } else if let Some(types) = cfg.value.get("attention_types").and_then(|v| v.as_array()) {
        for entry in types {
            let pattern = entry.get(0).and_then(|p| p.as_array());
            let repeat = entry.get(1).and_then(|r| r.as_u64());
            let (Some(pattern), Some(repeat)) = (pattern, repeat) else {
                return Err(cfg.error(format!("bad attention_types entry {entry}")));
            };
            for _ in 0..repeat {
                for v in pattern {
                    if out.len() > n_layers {
                        break;
                    }
                    out.push(parse(v)?);
                }
            }
        }
    } else {
        out = vec![false; n_layers];
    }
    if out.len() != n_layers {
        return Err(cfg.error(format!(
            "attention types describe {} layers, the model has {n_layers}",
            out.len()
        )));
    }
    Ok(out)
}

fn spec(cfg: &HfConfig) -> Result<DecoderSpec> {
    let hidden_size = cfg.usize("hidden_size")?;
    let n_heads = cfg.usize_any(&["num_heads", "num_attention_heads"])?;
    let n_layers = cfg.usize_any(&["num_layers", "num_hidden_layers"])?;
    if n_layers > super::MAX_LAYERS {
        return Err(cfg.error(format!(
            "num_layers {n_layers} is out of range (at most {})",
            super::MAX_LAYERS
        )));
    }
    let window = cfg.opt_usize("window_size")?.unwrap_or(256);
    let windows = local_layers(cfg, n_layers)?
        .into_iter()
        .map(|local| local.then_some(window))
        .collect();
    let intermediate_size = match cfg.opt_usize("intermediate_size")? {
        Some(n) => n,
        None => hidden_size.saturating_mul(4),
    };
    Ok(DecoderSpec {
        model_type: "gpt_neo".to_string(),
        vocab_size: cfg.usize("vocab_size")?,
        hidden_size,
        n_layers,
        n_heads,
        n_kv_heads: n_heads,
        head_dim: hidden_size / n_heads.max(1),
        intermediate_size,
        norm: NormKind::LayerNorm {
            eps: cfg.f64_or("layer_norm_epsilon", 1e-5)?,
        },
        residual: Residual::Sequential,
        block_norms: BlockNorms::PRE,
        positions: PositionEncoding::Learned {
            max_positions: cfg.opt_usize("max_position_embeddings")?.unwrap_or(2048),
        },
        attention: AttentionSpec {
            qkv: QkvLayout::Separate,
            qkv_bias: false,
            out_bias: true,
            scale: 1.0,
            scale_by_inverse_layer: false,
            softcap: None,
            qk_norm: QkNorm::None,
            clip_qkv: None,
            scores_in_f32: true,
            windows,
        },
        mlp: MlpSpec {
            gated: false,
            activation: activation(cfg, &["activation_function"], "gelu_new")?,
            bias: true,
        },
        head: HeadSpec {
            tied: cfg.bool_or("tie_word_embeddings", true)?,
            embed_scale: None,
            final_softcap: None,
        },
        names: NAMES,
        init_std: cfg.f64_or("initializer_range", 0.02)?,
        bos_token_id: cfg.token("bos_token_id"),
        eos_token_id: cfg.token("eos_token_id"),
    })
}
