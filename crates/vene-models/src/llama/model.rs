//! The Llama language model.

use candle_core::{DType, Device, Tensor, D};
use candle_nn::{Embedding, Module, VarBuilder, VarMap};
use vene_hooks::{Component, ComponentShape, HookError, HookableModel, Hooks};

use super::block::LlamaBlock;
use super::config::{inv_freq, validate};
use crate::cache::KvCache;
use crate::decoder::{self, Decoder};
use crate::ops::{rms_norm, Positions};
use crate::weights::{self, get, normal};
use crate::{LanguageModel, LlamaConfig, Result};

/// Std of the normal init of fresh Llama weights (HF's `initializer_range` default).
const INIT_STD: f64 = 0.02;

/// Llama (HF `LlamaForCausalLM`: RoPE incl. llama3 scaling, grouped-query attention, RMSNorm,
/// SwiGLU) with a hook call at every component.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::VarMap;
/// use vene_hooks::NoHooks;
/// use vene_models::{llama_config, LanguageModel, Llama};
///
/// let varmap = VarMap::new();
/// let model = Llama::new_random(&llama_config(64, 16, 2, 4, 2, 40), &varmap, DType::F32, &Device::Cpu)?;
/// let logits = model.forward(&Tensor::new(&[[1u32, 5, 9]], &Device::Cpu)?, None, &mut NoHooks)?;
/// assert_eq!(logits.dims(), &[1, 3, 64]);
/// # Ok::<(), vene_models::ModelError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Llama {
    embed: Embedding,
    layers: Vec<LlamaBlock>,
    norm: candle_nn::RmsNorm,
    lm_head: Tensor,
    inv_freq: Tensor,
    cfg: LlamaConfig,
    device: Device,
    dtype: DType,
}

impl Llama {
    /// Builds the model from weights named as HF names them (`model.layers.0.self_attn.q_proj.weight`,
    /// `lm_head.weight` unless `tie_word_embeddings`). On a var builder over a [`VarMap`],
    /// missing weights are created with HF's init (normal, std 0.02; norms at 1).
    pub fn load(vb: VarBuilder, cfg: &LlamaConfig) -> Result<Self> {
        validate(cfg)?;
        let m = vb.pp("model");
        let d = cfg.hidden_size;
        let embed_w = get(
            &m,
            (cfg.vocab_size, d),
            "embed_tokens.weight",
            normal(INIT_STD),
        )?;
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| LlamaBlock::load(&m.pp(format!("layers.{i}")), cfg, i, INIT_STD))
            .collect::<Result<Vec<_>>>()?;
        let norm = weights::rms_norm(&m.pp("norm"), d, cfg.rms_norm_eps)?;
        let lm_head = if cfg.tie_word_embeddings.unwrap_or(false) {
            embed_w.clone()
        } else {
            get(&vb, (cfg.vocab_size, d), "lm_head.weight", normal(INIT_STD))?
        };
        let freqs = inv_freq(cfg);
        let n = freqs.len();
        Ok(Self {
            embed: Embedding::new(embed_w, d),
            layers,
            norm,
            lm_head,
            inv_freq: Tensor::from_vec(freqs, (1, n), vb.device())?,
            cfg: cfg.clone(),
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    /// A model with fresh random weights held by `varmap`, named as HF names them.
    pub fn new_random(
        cfg: &LlamaConfig,
        varmap: &VarMap,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Self::load(VarBuilder::from_varmap(varmap, dtype, device), cfg)
    }

    /// The config the model was built from.
    pub fn config(&self) -> &LlamaConfig {
        &self.cfg
    }

    /// A copy with every weight on `device` in `dtype` (see [`LanguageModel::to`]); the
    /// rotary frequencies stay f32, on `device`.
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        let f = |t: &Tensor| t.to_device(device)?.to_dtype(dtype);
        let embed = weights::map_embedding(&self.embed, &f)?;
        let lm_head = if self.cfg.tie_word_embeddings.unwrap_or(false) {
            embed.embeddings().clone()
        } else {
            f(&self.lm_head)?
        };
        Ok(Self {
            layers: self
                .layers
                .iter()
                .map(|b| b.map_weights(&f))
                .collect::<Result<_>>()?,
            norm: weights::map_rms_norm(&self.norm, &f)?,
            embed,
            lm_head,
            inv_freq: self.inv_freq.to_device(device)?,
            cfg: self.cfg.clone(),
            device: device.clone(),
            dtype,
        })
    }

    /// `cos`, `sin` `[T, hd/2]` (shared positions) or `[B, T, hd/2]`, in the model dtype.
    fn cos_sin(&self, pos: &Positions) -> Result<(Tensor, Tensor)> {
        let ids = if pos.shared {
            pos.ids.get(0)?
        } else {
            pos.ids.clone()
        };
        let freqs = ids
            .to_dtype(DType::F32)?
            .unsqueeze(D::Minus1)?
            .broadcast_mul(&self.inv_freq)?;
        let cos = freqs.cos()?.to_dtype(self.dtype)?.contiguous()?;
        let sin = freqs.sin()?.to_dtype(self.dtype)?.contiguous()?;
        Ok((cos, sin))
    }
}

impl Decoder for Llama {
    type Layer = LlamaBlock;

    fn layers(&self) -> &[LlamaBlock] {
        &self.layers
    }

    fn lm_head(&self) -> &Tensor {
        &self.lm_head
    }

    fn embed(&self, ids: &Tensor, pos: &Positions) -> Result<(Tensor, (Tensor, Tensor))> {
        let cos_sin = self.cos_sin(pos)?;
        Ok((self.embed.forward(ids)?, cos_sin))
    }

    fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        rms_norm(x, &self.norm)
    }
}

impl HookableModel for Llama {
    fn n_layers(&self) -> usize {
        self.cfg.num_hidden_layers
    }

    fn model_type(&self) -> &str {
        "llama"
    }

    fn component_shape(&self, component: Component) -> vene_hooks::Result<ComponentShape> {
        let d = self.cfg.hidden_size;
        let (h, kv) = (self.cfg.num_attention_heads, self.cfg.num_key_value_heads());
        let hd = d / h.max(1);
        let shape = |width, n_heads| ComponentShape { width, n_heads };
        Ok(match component.tap() {
            Component::QueryOutput | Component::AttentionValueOutput => shape(h * hd, h),
            Component::KeyOutput | Component::ValueOutput => shape(kv * hd, kv),
            Component::MlpActivation => shape(self.cfg.intermediate_size, 1),
            Component::BlockInput
            | Component::BlockOutput
            | Component::AttentionInput
            | Component::AttentionOutput
            | Component::MlpInput
            | Component::MlpOutput => shape(d, 1),
            other => {
                return Err(HookError::ComponentUnavailable {
                    component: other,
                    model: "llama".to_string(),
                })
            }
        })
    }
}

impl LanguageModel for Llama {
    fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        Llama::to(self, device, dtype)
    }

    fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        decoder::run(self, input_ids, attention_mask, None, hooks)
    }

    fn forward_cached(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        decoder::run(self, input_ids, attention_mask, Some(cache), hooks)
    }

    fn new_cache(&self) -> KvCache {
        KvCache::new(self.cfg.num_hidden_layers)
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn vocab_size(&self) -> usize {
        self.cfg.vocab_size
    }

    fn hidden_size(&self) -> usize {
        self.cfg.hidden_size
    }
}
