//! The GPT-2 language model.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Embedding, Module, VarBuilder, VarMap};
use vene_hooks::{Component, ComponentShape, HookError, HookableModel, Hooks};

use super::block::Gpt2Block;
use crate::cache::KvCache;
use crate::decoder::{self, Decoder};
use crate::ops::{layer_norm, Positions};
use crate::weights::{self, get, normal};
use crate::{Gpt2Config, LanguageModel, ModelError, Result};

/// GPT-2 (HF `GPT2LMHeadModel`) with a hook call at every component.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::VarMap;
/// use vene_hooks::NoHooks;
/// use vene_models::{Gpt2, Gpt2Config, LanguageModel};
///
/// let cfg = Gpt2Config::tiny(64, 16, 2, 2);
/// let varmap = VarMap::new();
/// let model = Gpt2::new_random(&cfg, &varmap, DType::F32, &Device::Cpu)?;
/// let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
/// let logits = model.forward(&ids, None, &mut NoHooks)?;
/// assert_eq!(logits.dims(), &[1, 3, 64]);
/// # Ok::<(), vene_models::ModelError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Gpt2 {
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Gpt2Block>,
    ln_f: candle_nn::LayerNorm,
    lm_head: Tensor,
    cfg: Gpt2Config,
    device: Device,
    dtype: DType,
}

impl Gpt2 {
    /// Builds the model from weights named as HF names them, with or without the
    /// `transformer.` prefix; Conv1D weights are `[in, out]`. On a var builder over a
    /// [`VarMap`], missing weights are created with HF's init (normal, std
    /// `initializer_range`; output projections scaled by `1/sqrt(2 n_layer)`).
    pub fn load(vb: VarBuilder, cfg: &Gpt2Config) -> Result<Self> {
        cfg.validate()?;
        let root = vb.clone();
        let vb =
            if !vb.contains_tensor("transformer.wte.weight") && vb.contains_tensor("wte.weight") {
                vb
            } else {
                vb.pp("transformer")
            };
        let (d, std) = (cfg.n_embd, cfg.initializer_range);
        let wte_w = get(&vb, (cfg.vocab_size, d), "wte.weight", normal(std))?;
        let wpe_w = get(&vb, (cfg.n_positions, d), "wpe.weight", normal(std))?;
        let blocks = (0..cfg.n_layer)
            .map(|i| Gpt2Block::load(&vb.pp(format!("h.{i}")), cfg, i))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = weights::layer_norm(&vb.pp("ln_f"), d, cfg.layer_norm_epsilon)?;
        let lm_head = if cfg.tie_word_embeddings {
            wte_w.clone()
        } else {
            get(&root, (cfg.vocab_size, d), "lm_head.weight", normal(std))?
        };
        Ok(Self {
            wte: Embedding::new(wte_w, d),
            wpe: Embedding::new(wpe_w, d),
            blocks,
            ln_f,
            lm_head,
            cfg: cfg.clone(),
            device: vb.device().clone(),
            dtype: vb.dtype(),
        })
    }

    /// A model with fresh random weights held by `varmap` (trainable with candle autograd),
    /// named as HF names them (`transformer.h.0.attn.c_attn.weight`, ...).
    pub fn new_random(
        cfg: &Gpt2Config,
        varmap: &VarMap,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        Self::load(VarBuilder::from_varmap(varmap, dtype, device), cfg)
    }

    /// The config the model was built from.
    pub fn config(&self) -> &Gpt2Config {
        &self.cfg
    }

    /// A copy with every weight on `device` in `dtype` (see [`LanguageModel::to`]).
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        let f = |t: &Tensor| t.to_device(device)?.to_dtype(dtype);
        let wte = weights::map_embedding(&self.wte, &f)?;
        let lm_head = if self.cfg.tie_word_embeddings {
            wte.embeddings().clone()
        } else {
            f(&self.lm_head)?
        };
        Ok(Self {
            wpe: weights::map_embedding(&self.wpe, &f)?,
            blocks: self
                .blocks
                .iter()
                .map(|b| b.map_weights(&f))
                .collect::<Result<_>>()?,
            ln_f: weights::map_layer_norm(&self.ln_f, &f)?,
            wte,
            lm_head,
            cfg: self.cfg.clone(),
            device: device.clone(),
            dtype,
        })
    }
}

impl Decoder for Gpt2 {
    type Layer = Gpt2Block;

    fn layers(&self) -> &[Gpt2Block] {
        &self.blocks
    }

    fn lm_head(&self) -> &Tensor {
        &self.lm_head
    }

    fn check_len(&self, len: usize) -> Result<()> {
        if len > self.cfg.n_positions {
            return Err(ModelError::InvalidInput(format!(
                "sequence of {len} tokens is longer than GPT-2's n_positions {}",
                self.cfg.n_positions
            )));
        }
        Ok(())
    }

    fn embed(&self, ids: &Tensor, pos: &Positions) -> Result<(Tensor, ())> {
        let x = self
            .wte
            .forward(ids)?
            .broadcast_add(&self.wpe.forward(&pos.ids)?)?;
        Ok((x, ()))
    }

    fn final_norm(&self, x: &Tensor) -> Result<Tensor> {
        layer_norm(x, &self.ln_f)
    }
}

impl HookableModel for Gpt2 {
    fn n_layers(&self) -> usize {
        self.cfg.n_layer
    }

    fn model_type(&self) -> &str {
        "gpt2"
    }

    fn component_shape(&self, component: Component) -> vene_hooks::Result<ComponentShape> {
        let d = self.cfg.n_embd;
        let h = self.cfg.n_head;
        let shape = |width, n_heads| ComponentShape { width, n_heads };
        Ok(match component.tap() {
            Component::QueryOutput
            | Component::KeyOutput
            | Component::ValueOutput
            | Component::AttentionValueOutput => shape(d, h),
            Component::MlpActivation => shape(self.cfg.d_ff(), 1),
            Component::AttentionWeight => shape(0, h),
            Component::BlockInput
            | Component::BlockOutput
            | Component::AttentionInput
            | Component::AttentionOutput
            | Component::MlpInput
            | Component::MlpOutput => shape(d, 1),
            other => {
                return Err(HookError::ComponentUnavailable {
                    component: other,
                    model: "gpt2".to_string(),
                })
            }
        })
    }
}

impl LanguageModel for Gpt2 {
    fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        Gpt2::to(self, device, dtype)
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
        KvCache::new(self.cfg.n_layer)
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
        self.cfg.n_embd
    }
}
