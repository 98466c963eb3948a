//! GPT-2 (`GPT2LMHeadModel`): learned positions, pre-LayerNorm blocks, fused Conv1D q/k/v,
//! GELU MLP, tied head. Also the typed [`Gpt2Config`] for random models.

use serde::{Deserialize, Serialize};

use super::{Family, HfConfig};
use crate::decoder::spec::{
    Activation, AttentionSpec, BlockNorms, DecoderSpec, HeadSpec, MlpSpec, NormKind,
    PositionEncoding, QkNorm, QkvLayout, Residual, WeightNames,
};
use crate::{ModelError, Result};

/// Hyper-parameters of a GPT-2 model, read from HF's `config.json`.
///
/// ```
/// let cfg: vene_models::Gpt2Config =
///     serde_json::from_str(r#"{"vocab_size": 64, "n_positions": 32, "n_embd": 16, "n_layer": 2, "n_head": 2}"#)?;
/// assert_eq!(cfg.d_ff(), 64);
/// assert_eq!(cfg.activation_function, "gelu_new");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpt2Config {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Maximum sequence length (learned position embeddings).
    pub n_positions: usize,
    /// Model width.
    pub n_embd: usize,
    /// Number of blocks.
    pub n_layer: usize,
    /// Number of attention heads.
    pub n_head: usize,
    /// MLP width; `None` means `4 * n_embd`.
    #[serde(default)]
    pub n_inner: Option<usize>,
    /// MLP activation: `gelu_new` (tanh approximation, the default), `gelu` (exact), `relu`,
    /// `silu`/`swish`, `gelu_pytorch_tanh`.
    #[serde(default = "default_activation")]
    pub activation_function: String,
    /// Layer-norm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// Divide attention scores by `sqrt(head_dim)`.
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    /// Also divide attention scores by `layer + 1`.
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    /// Whether the LM head shares the token embedding (true for HF GPT-2; when false the
    /// weights hold `lm_head.weight`).
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Std of the normal init of fresh weights.
    #[serde(default = "default_init")]
    pub initializer_range: f64,
    /// Beginning-of-sequence token.
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token.
    #[serde(default)]
    pub eos_token_id: Option<u32>,
}

fn default_activation() -> String {
    "gelu_new".to_string()
}
fn default_eps() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}
fn default_init() -> f64 {
    0.02
}

impl Gpt2Config {
    /// A small config with HF's defaults for everything but the sizes; `n_positions` is 1024.
    pub fn tiny(vocab_size: usize, n_embd: usize, n_layer: usize, n_head: usize) -> Self {
        Self {
            vocab_size,
            n_positions: 1024,
            n_embd,
            n_layer,
            n_head,
            n_inner: None,
            activation_function: default_activation(),
            layer_norm_epsilon: default_eps(),
            scale_attn_weights: true,
            scale_attn_by_inverse_layer_idx: false,
            tie_word_embeddings: true,
            initializer_range: default_init(),
            bos_token_id: None,
            eos_token_id: None,
        }
    }

    /// The shape of GPT-2 small (124M): 12 layers, width 768, 12 heads, vocab 50257.
    pub fn gpt2_small() -> Self {
        Self {
            n_positions: 1024,
            ..Self::tiny(50257, 768, 12, 12)
        }
    }

    /// MLP width.
    pub fn d_ff(&self) -> usize {
        self.n_inner.unwrap_or(4 * self.n_embd)
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head.max(1)
    }

    /// Checks that the sizes make a model.
    pub fn validate(&self) -> Result<()> {
        if self.n_head == 0 || self.n_embd / self.n_head * self.n_head != self.n_embd {
            return Err(ModelError::InvalidConfig(format!(
                "n_embd {} is not divisible by n_head {}",
                self.n_embd, self.n_head
            )));
        }
        if self.n_layer > super::MAX_LAYERS || self.n_embd > super::MAX_WIDTH {
            return Err(ModelError::InvalidConfig(format!(
                "n_layer {} or n_embd {} is out of range (at most {} and {})",
                self.n_layer,
                self.n_embd,
                super::MAX_LAYERS,
                super::MAX_WIDTH
            )));
        }
        if self.n_layer == 0 || self.vocab_size == 0 || self.n_positions == 0 {
            return Err(ModelError::InvalidConfig(
                "n_layer, vocab_size and n_positions must be positive".to_string(),
            ));
        }
        crate::decoder::spec::Activation::from_hf(&self.activation_function)
            .map(|_| ())
            .ok_or_else(|| {
                ModelError::InvalidConfig(format!(
                    "unsupported activation_function '{}' (supported: {})",
                    self.activation_function,
                    crate::decoder::spec::Activation::SUPPORTED
                ))
            })
    }
}

pub(crate) const FAMILY: Family = Family {
    model_type: "gpt2",
    example: "openai-community/gpt2",
    spec,
    names: NAMES,
    qkv: QkvLayout::Fused,
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
    q: "attn.c_attn",
    k: "",
    v: "",
    o: "attn.c_proj",
    q_norm: "",
    k_norm: "",
    gate: "",
    up: "mlp.c_fc",
    down: "mlp.c_proj",
    act: "mlp.act",
    final_norm: "ln_f",
    lm_head: "lm_head",
    conv1d: true,
};

fn spec(cfg: &HfConfig) -> Result<DecoderSpec> {
    let typed: Gpt2Config =
        serde_json::from_value(cfg.value.clone()).map_err(|e| cfg.error(e.to_string()))?;
    spec_from_typed(&typed)
}

/// The spec of a typed [`Gpt2Config`].
pub(crate) fn spec_from_typed(c: &Gpt2Config) -> Result<DecoderSpec> {
    c.validate()?;
    let head_dim = c.head_dim();
    Ok(DecoderSpec {
        model_type: "gpt2".to_string(),
        vocab_size: c.vocab_size,
        hidden_size: c.n_embd,
        n_layers: c.n_layer,
        n_heads: c.n_head,
        n_kv_heads: c.n_head,
        head_dim,
        intermediate_size: c.d_ff(),
        norm: NormKind::LayerNorm {
            eps: c.layer_norm_epsilon,
        },
        residual: Residual::Sequential,
        block_norms: BlockNorms::PRE,
        positions: PositionEncoding::Learned {
            max_positions: c.n_positions,
        },
        attention: AttentionSpec {
            qkv: QkvLayout::Fused,
            qkv_bias: true,
            out_bias: true,
            scale: if c.scale_attn_weights {
                1.0 / (head_dim as f64).sqrt()
            } else {
                1.0
            },
            scale_by_inverse_layer: c.scale_attn_by_inverse_layer_idx,
            softcap: None,
            qk_norm: QkNorm::None,
            clip_qkv: None,
            scores_in_f32: false,
            windows: vec![None; c.n_layer],
        },
        mlp: MlpSpec {
            gated: false,
            activation: Activation::from_hf(&c.activation_function).unwrap_or(Activation::GeluTanh),
            bias: true,
        },
        head: HeadSpec {
            tied: c.tie_word_embeddings,
            embed_scale: None,
            final_softcap: None,
        },
        names: NAMES,
        init_std: c.initializer_range,
        bos_token_id: c.bos_token_id,
        eos_token_id: c.eos_token_id,
    })
}
