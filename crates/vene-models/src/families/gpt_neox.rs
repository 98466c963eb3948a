//! GPT-NeoX / Pythia (`GPTNeoXForCausalLM`): parallel (or sequential) residual, LayerNorms, one
//! fused q/k/v projection laid out per head, partial rotary embedding, GELU MLP, untied head.

use super::{activation, rope_scaling, Family, HfConfig};
use crate::decoder::spec::{
    AttentionSpec, BlockNorms, DecoderSpec, HeadSpec, MlpSpec, NormKind, PositionEncoding, QkNorm,
    QkvLayout, Residual, RotarySpec, WeightNames,
};
use crate::Result;

pub(crate) const FAMILY: Family = Family {
    model_type: "gpt_neox",
    example: "EleutherAI/pythia-70m",
    spec,
    names: NAMES,
    qkv: QkvLayout::FusedPerHead,
};

const NAMES: WeightNames = WeightNames {
    prefix: "gpt_neox",
    embed: "embed_in",
    pos_embed: None,
    layers: "layers",
    attn_pre_norm: "input_layernorm",
    attn_post_norm: "",
    mlp_pre_norm: "post_attention_layernorm",
    mlp_post_norm: "",
    q: "attention.query_key_value",
    k: "",
    v: "",
    o: "attention.dense",
    q_norm: "",
    k_norm: "",
    gate: "",
    up: "mlp.dense_h_to_4h",
    down: "mlp.dense_4h_to_h",
    act: "mlp.act",
    final_norm: "final_layer_norm",
    lm_head: "embed_out",
    conv1d: false,
};

fn spec(cfg: &HfConfig) -> Result<DecoderSpec> {
    let hidden_size = cfg.usize("hidden_size")?;
    let n_heads = cfg.usize("num_attention_heads")?;
    let n_layers = cfg.usize("num_hidden_layers")?;
    let head_dim = hidden_size / n_heads.max(1);
    let pct = match cfg.opt_f64("rotary_pct")? {
        Some(p) => p,
        None => cfg.f64_or("partial_rotary_factor", 0.25)?,
    };
    if !(pct > 0.0 && pct <= 1.0) {
        return Err(cfg.error(format!("rotary_pct {pct} must be in (0, 1]")));
    }
    // Python's int(): truncation.
    let rotary_dims = (head_dim as f64 * pct) as usize;
    let theta = match cfg.opt_f64("rotary_emb_base")? {
        Some(t) => t,
        None => cfg.f64_or("rope_theta", 10_000.0)?,
    };
    let bias = cfg.bool_or("attention_bias", true)?;
    Ok(DecoderSpec {
        model_type: "gpt_neox".to_string(),
        vocab_size: cfg.usize("vocab_size")?,
        hidden_size,
        n_layers,
        n_heads,
        n_kv_heads: n_heads,
        head_dim,
        intermediate_size: cfg.usize("intermediate_size")?,
        norm: NormKind::LayerNorm {
            eps: cfg.f64_or("layer_norm_eps", 1e-5)?,
        },
        residual: if cfg.bool_or("use_parallel_residual", true)? {
            Residual::Parallel
        } else {
            Residual::Sequential
        },
        block_norms: BlockNorms::PRE,
        positions: PositionEncoding::Rotary(RotarySpec {
            theta,
            dims: rotary_dims,
            scaling: rope_scaling(cfg)?,
            max_positions: cfg.opt_usize("max_position_embeddings")?.unwrap_or(2048),
        }),
        attention: AttentionSpec {
            qkv: QkvLayout::FusedPerHead,
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
            gated: false,
            activation: activation(cfg, &["hidden_act"], "gelu")?,
            bias: true,
        },
        head: HeadSpec {
            tied: cfg.bool_or("tie_word_embeddings", false)?,
            embed_scale: None,
            final_softcap: None,
        },
        names: NAMES,
        init_std: cfg.f64_or("initializer_range", 0.02)?,
        bos_token_id: cfg.token("bos_token_id"),
        eos_token_id: cfg.token("eos_token_id"),
    })
}
