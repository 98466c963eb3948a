//! [`DecoderSpec`]: everything that tells one decoder-only family from another, as plain data.
//!
//! A family (see `families/`) turns a Hugging Face `config.json` into a spec; the generic
//! decoder builds and runs any spec. Every field names one architectural choice, so a new
//! family is a new way of filling this struct.

/// The architecture of a decoder-only language model, family by family.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderSpec {
    /// The `model_type` of the HF config (`gpt2`, `llama`, `gemma2`, ...).
    pub model_type: String,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Number of decoder layers.
    pub n_layers: usize,
    /// Number of query heads.
    pub n_heads: usize,
    /// Number of key/value heads (grouped-query attention when smaller than `n_heads`).
    pub n_kv_heads: usize,
    /// Width of one head (may differ from `hidden_size / n_heads`, as in Gemma and Qwen3).
    pub head_dim: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// The kind of every norm of the model (block norms and the final norm).
    pub norm: NormKind,
    /// How a block combines attention, MLP and residual stream.
    pub residual: Residual,
    /// Which norms a block has around its attention and MLP.
    pub block_norms: BlockNorms,
    /// How positions enter the model.
    pub positions: PositionEncoding,
    /// The attention's details.
    pub attention: AttentionSpec,
    /// The MLP.
    pub mlp: MlpSpec,
    /// Embedding and output head.
    pub head: HeadSpec,
    /// Where each weight lives in the checkpoint.
    pub names: WeightNames,
    /// Std of the normal init of fresh (random) linear and embedding weights.
    pub init_std: f64,
    /// Beginning-of-sequence token, when the config names one.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence token, when the config names one.
    pub eos_token_id: Option<u32>,
}

/// A normalisation layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NormKind {
    /// `(x - mean) / sqrt(var + eps) * w + b` (GPT-2, GPT-Neo, GPT-NeoX).
    LayerNorm {
        /// Epsilon inside the root.
        eps: f64,
    },
    /// Layer norm without weight or bias, computed in f32 (OLMo).
    LayerNormNoParams {
        /// Epsilon inside the root.
        eps: f64,
    },
    /// `w * x / sqrt(mean(x²) + eps)`, normalised in f32 (Llama, Mistral, Qwen, OLMo 2).
    RmsNorm {
        /// Epsilon inside the root.
        eps: f64,
    },
    /// `(1 + w) * x / sqrt(mean(x²) + eps)`, all in f32; the checkpoint stores `w` (Gemma).
    GemmaRmsNorm {
        /// Epsilon inside the root.
        eps: f64,
    },
}

/// How a block adds its attention and MLP to the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Residual {
    /// `x = x + attn(..x..)`, then `x = x + mlp(..x..)`.
    Sequential,
    /// `x = x + attn(n1(x)) + mlp(n2(x))`: both branches read the same `x` (GPT-NeoX, GPT-J).
    Parallel,
}

/// Which of the four possible norms a block applies; a name in [`WeightNames`] goes with each
/// present one (none for [`NormKind::LayerNormNoParams`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockNorms {
    /// Norm of the attention's input (every family but OLMo 2).
    pub attn_pre: bool,
    /// Norm of the attention's output, before the residual add (Gemma 2, OLMo 2).
    pub attn_post: bool,
    /// Norm of the MLP's input (every family but OLMo 2).
    pub mlp_pre: bool,
    /// Norm of the MLP's output, before the residual add (Gemma 2, OLMo 2).
    pub mlp_post: bool,
}

impl BlockNorms {
    /// A norm before attention and before the MLP (GPT-2, Llama and most others).
    pub const PRE: BlockNorms = BlockNorms {
        attn_pre: true,
        attn_post: false,
        mlp_pre: true,
        mlp_post: false,
    };
}

/// How token positions enter the model.
#[derive(Debug, Clone, PartialEq)]
pub enum PositionEncoding {
    /// A learned table of `max_positions` vectors added to the token embedding (GPT-2, GPT-Neo).
    Learned {
        /// Rows of the table: the longest sequence the model takes.
        max_positions: usize,
    },
    /// Rotary embedding of queries and keys.
    Rotary(RotarySpec),
}

/// Rotary position embedding (HF `rotate_half` layout: the two halves of the rotated dims).
#[derive(Debug, Clone, PartialEq)]
pub struct RotarySpec {
    /// Base of the frequencies (`rope_theta`).
    pub theta: f64,
    /// How many leading dims of each head are rotated (`head_dim`, or fewer: GPT-NeoX's
    /// `rotary_pct`); the rest pass through.
    pub dims: usize,
    /// Frequency scaling.
    pub scaling: RopeScaling,
    /// `max_position_embeddings` of the config (2048 when absent): the width of an
    /// `attention_weight` unit, as pyvene sizes it.
    pub max_positions: usize,
}

/// RoPE frequency scaling.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Plain frequencies.
    None,
    /// Positions divided by `factor` (HF `linear`).
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// Llama 3's smooth frequency-dependent scaling (HF `llama3`).
    Llama3 {
        /// Scaling of the low frequencies.
        factor: f64,
        /// Wavelength boundary of the low frequencies.
        low_freq_factor: f64,
        /// Wavelength boundary of the high frequencies.
        high_freq_factor: f64,
        /// Context length the model was trained with.
        original_max_position_embeddings: f64,
    },
}

/// How q, k and v are projected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkvLayout {
    /// Three projections (`q_proj`, `k_proj`, `v_proj`).
    Separate,
    /// One projection whose output is `[q | k | v]` (GPT-2's `c_attn`).
    Fused,
    /// One projection whose output is, per head, `[q_h | k_h | v_h]` (GPT-NeoX's
    /// `query_key_value`); reordered to `[q | k | v]` when loaded.
    FusedPerHead,
}

/// Normalisation of queries and keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QkNorm {
    /// None.
    None,
    /// RMS norm of each head (width `head_dim`), after the head split (Qwen3).
    PerHead,
    /// RMS norm of the whole projection (width heads × head_dim), before the split (OLMo 2).
    Whole,
}

/// The attention's details.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionSpec {
    /// How q, k, v are projected.
    pub qkv: QkvLayout,
    /// Whether the q/k/v projections have biases.
    pub qkv_bias: bool,
    /// Whether the output projection has a bias.
    pub out_bias: bool,
    /// Factor of the scores `q·k` (`head_dim^-0.5`, Gemma 2's `query_pre_attn_scalar^-0.5`, or
    /// 1 for GPT-Neo).
    pub scale: f64,
    /// Also divide the scores of layer `i` by `i + 1` (GPT-2's `scale_attn_by_inverse_layer_idx`).
    pub scale_by_inverse_layer: bool,
    /// `tanh(s / cap) * cap` on the scaled scores (Gemma 2).
    pub softcap: Option<f64>,
    /// Query/key normalisation.
    pub qk_norm: QkNorm,
    /// Clamp q, k, v to `[-c, c]` after their projections (and hooks) (OLMo).
    pub clip_qkv: Option<f64>,
    /// Compute the scores in f32 whatever the model's dtype (GPT-Neo).
    pub scores_in_f32: bool,
    /// Per layer: the sliding window (each query sees this many keys, itself included), or
    /// `None` for full causal attention.
    pub windows: Vec<Option<usize>>,
}

/// An activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// GELU, tanh approximation (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// GELU, exact (erf).
    Gelu,
    /// ReLU.
    Relu,
    /// SiLU (swish).
    Silu,
}

impl Activation {
    /// The activation an HF config names.
    pub fn from_hf(name: &str) -> Option<Activation> {
        Some(match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" | "gelu_accurate" => Self::GeluTanh,
            "gelu" => Self::Gelu,
            "relu" => Self::Relu,
            "silu" | "swish" => Self::Silu,
            _ => return None,
        })
    }

    /// The names [`Activation::from_hf`] accepts.
    pub const SUPPORTED: &'static str =
        "gelu_new, gelu_pytorch_tanh, gelu_fast, gelu_accurate, gelu, relu, silu, swish";
}

/// The MLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MlpSpec {
    /// `down(act(gate(x)) * up(x))` when true, `down(act(up(x)))` when false.
    pub gated: bool,
    /// The activation.
    pub activation: Activation,
    /// Whether the projections have biases.
    pub bias: bool,
}

/// Embedding and output head.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadSpec {
    /// The output head reuses the token embedding.
    pub tied: bool,
    /// Multiply the token embedding by this (Gemma: `sqrt(hidden_size)`).
    pub embed_scale: Option<f64>,
    /// `tanh(logits / cap) * cap` (Gemma 2).
    pub final_softcap: Option<f64>,
}

/// Where the weights live in a checkpoint. Layer names are relative to `{layers}.{i}`, the
/// others to `prefix` (except `lm_head`, which is at the root); `None` for a part the family
/// lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightNames {
    /// The base model's prefix (`model`, `transformer`, `gpt_neox`); a checkpoint of the bare
    /// base model (without the prefix) loads too.
    pub prefix: &'static str,
    /// Token embedding, `[vocab, hidden]`.
    pub embed: &'static str,
    /// Learned position embedding.
    pub pos_embed: Option<&'static str>,
    /// The layer list (`layers`, `h`).
    pub layers: &'static str,
    /// Norm before attention.
    pub attn_pre_norm: &'static str,
    /// Norm after attention.
    pub attn_post_norm: &'static str,
    /// Norm before the MLP.
    pub mlp_pre_norm: &'static str,
    /// Norm after the MLP.
    pub mlp_post_norm: &'static str,
    /// Query projection, or the fused q/k/v projection.
    pub q: &'static str,
    /// Key projection (unused when fused).
    pub k: &'static str,
    /// Value projection (unused when fused).
    pub v: &'static str,
    /// Output projection.
    pub o: &'static str,
    /// Query norm.
    pub q_norm: &'static str,
    /// Key norm.
    pub k_norm: &'static str,
    /// MLP gate projection (gated MLPs).
    pub gate: &'static str,
    /// MLP up projection (the first linear of a plain MLP).
    pub up: &'static str,
    /// MLP down projection.
    pub down: &'static str,
    /// The MLP's activation module (no weights; its output is pyvene's `mlp_activation` in
    /// module-path form).
    pub act: &'static str,
    /// Final norm.
    pub final_norm: &'static str,
    /// Output head, at the root.
    pub lm_head: &'static str,
    /// Linear weights are stored `[in, out]` (GPT-2's Conv1D) instead of `[out, in]`.
    pub conv1d: bool,
}

impl WeightNames {
    /// The names of Llama and the families that copy its layout.
    pub const LLAMA: WeightNames = WeightNames {
        prefix: "model",
        embed: "embed_tokens",
        pos_embed: None,
        layers: "layers",
        attn_pre_norm: "input_layernorm",
        attn_post_norm: "post_attention_layernorm",
        mlp_pre_norm: "post_attention_layernorm",
        mlp_post_norm: "post_feedforward_layernorm",
        q: "self_attn.q_proj",
        k: "self_attn.k_proj",
        v: "self_attn.v_proj",
        o: "self_attn.o_proj",
        q_norm: "self_attn.q_norm",
        k_norm: "self_attn.k_norm",
        gate: "mlp.gate_proj",
        up: "mlp.up_proj",
        down: "mlp.down_proj",
        act: "mlp.act_fn",
        final_norm: "norm",
        lm_head: "lm_head",
        conv1d: false,
    };
}

impl DecoderSpec {
    /// Width of the query projection (all heads).
    pub fn q_width(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of the key and value projections.
    pub fn kv_width(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// The config's `max_position_embeddings` (`n_positions`), for every family: the width
    /// of an `attention_weight` unit (pyvene's `max_position_embeddings`).
    pub fn max_position_embeddings(&self) -> usize {
        match &self.positions {
            PositionEncoding::Learned { max_positions } => *max_positions,
            PositionEncoding::Rotary(r) => r.max_positions,
        }
    }

    /// The longest sequence the model takes, when it has a limit (learned positions).
    pub fn max_positions(&self) -> Option<usize> {
        match self.positions {
            PositionEncoding::Learned { max_positions } => Some(max_positions),
            PositionEncoding::Rotary(_) => None,
        }
    }

    /// The sliding window of layer `layer` (`None`: full attention).
    pub fn window(&self, layer: usize) -> Option<usize> {
        self.attention.windows.get(layer).copied().flatten()
    }
}
