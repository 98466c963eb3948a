//! [`Model`]: GPT-2 or Llama behind one type, with the loaders.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use vene_hooks::{Component, ComponentShape, HookableModel, Hooks};

use crate::{Gpt2, Gpt2Config, KvCache, LanguageModel, Llama, LlamaConfig, Result};

/// A loaded model of any supported architecture.
///
/// ```
/// use candle_core::{DType, Device};
/// use vene_hooks::HookableModel;
/// use vene_models::Model;
///
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene/tiny-llama");
/// let model = Model::from_dir(dir, DType::F32, &Device::Cpu)?;
/// assert_eq!(model.model_type(), "llama");
/// assert_eq!(model.n_layers(), 2);
/// # Ok::<(), vene_models::ModelError>(())
/// ```
#[derive(Debug, Clone)]
pub enum Model {
    /// GPT-2.
    Gpt2(Gpt2),
    /// Llama.
    Llama(Llama),
}

impl Model {
    /// Loads `config.json` (its `model_type` picks the architecture) and `model.safetensors`
    /// (or the shards of `model.safetensors.index.json`) from `dir`, casting weights to `dtype`.
    pub fn from_dir(dir: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<Model> {
        crate::loader::model_from_dir(dir.as_ref(), dtype, device)
    }

    /// Loads a model from the hub (revision `main` by default) through the default cache
    /// (`$HF_HOME/hub` or `~/.cache/huggingface/hub`): cached files are used as they are, missing
    /// ones are downloaded.
    pub fn from_hub(
        repo_id: &str,
        revision: Option<&str>,
        dtype: DType,
        device: &Device,
    ) -> Result<Model> {
        let dir = crate::hub::snapshot(repo_id, revision, None)?;
        Self::from_dir(dir, dtype, device)
    }

    /// As [`Model::from_hub`], with the hub cache in `cache_dir` (laid out as the hub lays it
    /// out: `models--<org>--<name>/refs/<revision>`, `snapshots/<sha>/...`).
    pub fn from_hub_with_cache(
        repo_id: &str,
        revision: Option<&str>,
        cache_dir: &Path,
        dtype: DType,
        device: &Device,
    ) -> Result<Model> {
        let dir = crate::hub::snapshot(repo_id, revision, Some(cache_dir))?;
        Self::from_dir(dir, dtype, device)
    }

    /// A GPT-2 with fresh random weights (HF init); the returned [`VarMap`] holds them, for
    /// training or saving.
    pub fn random_gpt2(cfg: &Gpt2Config, dtype: DType, device: &Device) -> Result<(Model, VarMap)> {
        let varmap = VarMap::new();
        let model = Gpt2::new_random(cfg, &varmap, dtype, device)?;
        Ok((Model::Gpt2(model), varmap))
    }

    /// A Llama with fresh random weights (HF init); the returned [`VarMap`] holds them.
    pub fn random_llama(
        cfg: &LlamaConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<(Model, VarMap)> {
        let varmap = VarMap::new();
        let model = Llama::new_random(cfg, &varmap, dtype, device)?;
        Ok((Model::Llama(model), varmap))
    }

    fn inner(&self) -> &dyn LanguageModel {
        match self {
            Model::Gpt2(m) => m,
            Model::Llama(m) => m,
        }
    }
}

impl HookableModel for Model {
    fn n_layers(&self) -> usize {
        self.inner().n_layers()
    }

    fn model_type(&self) -> &str {
        match self {
            Model::Gpt2(m) => m.model_type(),
            Model::Llama(m) => m.model_type(),
        }
    }

    fn component_shape(&self, component: Component) -> vene_hooks::Result<ComponentShape> {
        self.inner().component_shape(component)
    }
}

impl LanguageModel for Model {
    fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        self.inner().forward(input_ids, attention_mask, hooks)
    }

    fn forward_cached(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        self.inner()
            .forward_cached(input_ids, attention_mask, cache, hooks)
    }

    fn new_cache(&self) -> KvCache {
        self.inner().new_cache()
    }

    fn device(&self) -> &Device {
        self.inner().device()
    }

    fn dtype(&self) -> DType {
        self.inner().dtype()
    }

    fn vocab_size(&self) -> usize {
        self.inner().vocab_size()
    }

    fn hidden_size(&self) -> usize {
        self.inner().hidden_size()
    }

    fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        Ok(match self {
            Model::Gpt2(m) => Model::Gpt2(m.to(device, dtype)?),
            Model::Llama(m) => Model::Llama(m.to(device, dtype)?),
        })
    }
}
