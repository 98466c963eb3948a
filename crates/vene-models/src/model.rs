//! [`Model`]: a decoder-only language model of any supported family, built from a
//! [`DecoderSpec`], with a hook call at every component.

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use vene_hooks::{Component, ComponentShape, HookError, HookableModel, Hooks};
use vene_kernels::WeightLayout;

use crate::cache::KvCache;
use crate::decoder::block::Block;
use crate::decoder::build::Builder;
use crate::decoder::kernels::kernel_error;
use crate::decoder::norm::Norm;
use crate::decoder::positions::{positions, PositionRequest, Positions};
use crate::decoder::rotary::{Rotary, RotaryTables};
use crate::decoder::spec::{DecoderSpec, PositionEncoding};
use crate::inputs::check_ids;
use crate::{
    families, Gpt2Config, LanguageModel, LlamaConfig, LogitsAt, ModelError, Prefix, Result,
};

/// A loaded model of any supported family (see [`supported_model_types`](crate::supported_model_types)).
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
pub struct Model {
    spec: Arc<DecoderSpec>,
    embed: Tensor,
    pos_embed: Option<Tensor>,
    layers: Vec<Block>,
    final_norm: Norm,
    lm_head: Tensor,
    rotary: Option<Rotary>,
    device: Device,
    dtype: DType,
}

impl Model {
    /// Builds the model a spec describes from weights named as the family's HF checkpoints
    /// name them. On a var builder over a [`VarMap`], missing weights are created with HF's
    /// init (normal with std `init_std`, norms at their identity).
    pub fn from_spec(spec: DecoderSpec, vb: VarBuilder) -> Result<Model> {
        families::validate(&spec)?;
        let device = vb.device().clone();
        let dtype = vb.dtype();
        let (embed, pos_embed, layers, final_norm, lm_head) = {
            let b = Builder::new(&spec, vb);
            let embed = b.embed()?;
            let pos_embed = b.pos_embed()?;
            let layers = (0..spec.n_layers)
                .map(|i| b.block(i))
                .collect::<Result<Vec<_>>>()?;
            let final_norm = b.final_norm()?;
            let lm_head = b.lm_head(&embed)?;
            (embed, pos_embed, layers, final_norm, lm_head)
        };
        let rotary = match &spec.positions {
            PositionEncoding::Rotary(r) => Some(Rotary::new(r, &device)?),
            PositionEncoding::Learned { .. } => None,
        };
        Ok(Model {
            spec: Arc::new(spec),
            embed,
            pos_embed,
            layers,
            final_norm,
            lm_head,
            rotary,
            device,
            dtype,
        })
    }

    /// Loads `config.json` (its `model_type` picks the family) and the weights from `dir`:
    /// `model.safetensors`, the shards of `model.safetensors.index.json`, or a PyTorch
    /// checkpoint (`pytorch_model.bin`, or the shards of `pytorch_model.bin.index.json`),
    /// casting them to `dtype`.
    pub fn from_dir(dir: impl AsRef<Path>, dtype: DType, device: &Device) -> Result<Model> {
        crate::loader::model_from_dir(dir.as_ref(), dtype, device)
    }

    /// Loads a model from the hub (revision `main` by default) through the cache
    /// (`$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`): cached files are
    /// used as they are, missing ones are downloaded (from `$HF_ENDPOINT` when set; never with
    /// `HF_HUB_OFFLINE=1`; see [`crate::HubEnv`]). `repo_id` must be `owner/name`.
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

    /// A model of the family and sizes an HF `config.json` describes, with fresh random
    /// weights (HF init) held by the returned [`VarMap`] (trainable with candle autograd).
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use vene_hooks::HookableModel;
    ///
    /// let cfg = serde_json::json!({
    ///     "model_type": "gemma2", "vocab_size": 64, "hidden_size": 16, "num_hidden_layers": 2,
    ///     "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 4,
    ///     "intermediate_size": 32, "sliding_window": 4
    /// });
    /// let (model, _vars) = vene_models::Model::random_from_config(&cfg, DType::F32, &Device::Cpu)?;
    /// assert_eq!(model.model_type(), "gemma2");
    /// # Ok::<(), vene_models::ModelError>(())
    /// ```
    pub fn random_from_config(
        config: &serde_json::Value,
        dtype: DType,
        device: &Device,
    ) -> Result<(Model, VarMap)> {
        let spec = families::spec_from_config(config)?;
        families::check_random_size(&spec)?;
        let varmap = VarMap::new();
        let model = Self::from_spec(spec, VarBuilder::from_varmap(&varmap, dtype, device))?;
        Ok((model, varmap))
    }

    /// A GPT-2 with fresh random weights (HF init); the returned [`VarMap`] holds them, for
    /// training or saving.
    pub fn random_gpt2(cfg: &Gpt2Config, dtype: DType, device: &Device) -> Result<(Model, VarMap)> {
        let varmap = VarMap::new();
        let model = Self::gpt2_in_varmap(cfg, &varmap, dtype, device)?;
        Ok((model, varmap))
    }

    /// A GPT-2 whose weights live in `varmap` (taken from it when present, created with HF's
    /// init when not), named as HF names them (`transformer.h.0.attn.c_attn.weight`, ...).
    pub fn gpt2_in_varmap(
        cfg: &Gpt2Config,
        varmap: &VarMap,
        dtype: DType,
        device: &Device,
    ) -> Result<Model> {
        let spec = families::gpt2::spec_from_typed(cfg)?;
        families::check_random_size(&spec)?;
        Self::from_spec(spec, VarBuilder::from_varmap(varmap, dtype, device))
    }

    /// A Llama with fresh random weights (HF init); the returned [`VarMap`] holds them.
    pub fn random_llama(
        cfg: &LlamaConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<(Model, VarMap)> {
        let spec = families::llama::spec_from_typed(cfg)?;
        families::check_random_size(&spec)?;
        let varmap = VarMap::new();
        let model = Self::from_spec(spec, VarBuilder::from_varmap(&varmap, dtype, device))?;
        Ok((model, varmap))
    }

    /// The architecture the model was built from.
    pub fn spec(&self) -> &DecoderSpec {
        &self.spec
    }

    /// The unembedding, `[vocab_size, hidden_size]`: the LM head's weight (the token embedding
    /// when the head is tied), in the model's dtype. Logits are `final_norm(x) @ unembedding^T`
    /// (then the family's final softcap, if any). A direction `v` in the residual stream
    /// "writes" `unembedding @ v` to the logits directly (TransformerLens's `v @ W_U`, without
    /// the final norm).
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use vene_models::Model;
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene/tiny-gpt2");
    /// let model = Model::from_dir(dir, DType::F32, &Device::Cpu)?;
    /// let w_u = model.unembedding();
    /// assert_eq!(w_u.dims(), &[model.spec().vocab_size, model.spec().hidden_size]);
    /// # Ok::<(), vene_models::ModelError>(())
    /// ```
    pub fn unembedding(&self) -> &Tensor {
        &self.lm_head
    }

    /// The same model with every weight mapped by `f` (which must keep shapes), on `device`.
    fn map(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>, device: &Device) -> Result<Model> {
        let embed = f(&self.embed)?;
        // a tied head stays one tensor with the embedding
        let lm_head = if self.spec.head.tied {
            embed.clone()
        } else {
            f(&self.lm_head)?
        };
        Ok(Model {
            spec: self.spec.clone(),
            embed,
            pos_embed: self.pos_embed.as_ref().map(f).transpose()?,
            layers: self
                .layers
                .iter()
                .map(|l| l.map(f))
                .collect::<Result<Vec<_>>>()?,
            final_norm: self.final_norm.map(f)?,
            lm_head,
            rotary: self
                .rotary
                .as_ref()
                .map(|r| r.to_device(device))
                .transpose()?,
            device: device.clone(),
            dtype: self.dtype,
        })
    }

    /// The same weights, detached from autograd: a model made in a [`VarMap`] runs the
    /// untracked fast path (fused norms, softmax, rope) and keeps no graph.
    pub fn detached(&self) -> Result<Model> {
        self.map(&|t| Ok(t.detach()), &self.device)
    }

    /// The model moved to `device` and cast to `dtype` (norm parameters that the family keeps
    /// in f32 stay in f32).
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use vene_models::{LanguageModel, Model};
    ///
    /// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene/tiny-gpt2");
    /// let model = Model::from_dir(dir, DType::F32, &Device::Cpu)?.to(&Device::Cpu, DType::BF16)?;
    /// assert_eq!(model.dtype(), DType::BF16);
    /// # Ok::<(), vene_models::ModelError>(())
    /// ```
    pub fn to(&self, device: &Device, dtype: DType) -> Result<Model> {
        self.moved(device, dtype)
    }

    fn moved(&self, device: &Device, dtype: DType) -> Result<Model> {
        let mut m = self.map(
            &|t| {
                let t = t.to_device(device)?;
                Ok(if t.dtype().is_float() {
                    t.to_dtype(dtype)?
                } else {
                    t
                })
            },
            device,
        )?;
        m.dtype = dtype;
        Ok(m)
    }

    /// Logits for `input_ids` after the tokens in `cache` (extended with the new ones), at
    /// every position.
    fn run(
        &self,
        input_ids: &Tensor,
        mask: Option<&Tensor>,
        position_ids: Option<&Tensor>,
        cache: Option<&mut KvCache>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let logits = self.run_at(input_ids, mask, position_ids, cache, &LogitsAt::All, hooks)?;
        logits.ok_or_else(|| ModelError::InvalidInput("internal: no logits computed".into()))
    }

    /// As [`Model::run`], with logits only at `at` (`None` for [`LogitsAt::Nothing`], which
    /// stops after the last layer the hooks need).
    fn run_at(
        &self,
        input_ids: &Tensor,
        mask: Option<&Tensor>,
        position_ids: Option<&Tensor>,
        mut cache: Option<&mut KvCache>,
        at: &LogitsAt,
        hooks: &mut dyn Hooks,
    ) -> Result<Option<Tensor>> {
        let offset = match cache.as_deref() {
            Some(c) => {
                let b = input_ids.dims().first().copied().unwrap_or(0);
                c.check(self.layers.len(), b)?;
                c.len()
            }
            None => 0,
        };
        let pass = self.pass(input_ids, mask, position_ids, offset)?;
        let x = self.embed(&pass)?;
        let x = self.layers_from(x, 0, &pass, cache.as_deref_mut(), at, hooks)?;
        if let Some(c) = cache {
            c.advance(pass.t);
        }
        self.head(x, &pass, mask, at)
    }

    /// Checks the inputs of one pass and makes its positions (and rotary tables).
    pub(crate) fn pass(
        &self,
        input_ids: &Tensor,
        mask: Option<&Tensor>,
        position_ids: Option<&Tensor>,
        offset: usize,
    ) -> Result<Pass> {
        let s = &*self.spec;
        let (ids, b, t) = check_ids(input_ids, s.vocab_size)?;
        let ids = ids.to_device(&self.device)?;
        let window = s.attention.windows.iter().flatten().copied().min();
        let pos = positions(
            &PositionRequest {
                batch: b,
                t_new: t,
                offset,
                mask,
                position_ids,
                window,
            },
            &self.device,
        )?;
        let tables = match &self.rotary {
            Some(r) => Some(r.tables(&pos.ids, pos.shared, self.dtype)?),
            None => None,
        };
        Ok(Pass {
            ids,
            b,
            t,
            offset,
            pos,
            tables,
        })
    }

    /// The residual stream entering layer 0: token (and learned position) embeddings.
    pub(crate) fn embed(&self, pass: &Pass) -> Result<Tensor> {
        let s = &*self.spec;
        let mut x = embedding(&self.embed, &pass.ids)?;
        if let Some(scale) = s.head.embed_scale {
            // HF multiplies by the scale as a tensor of the activation dtype.
            let scale = Tensor::new(scale as f32, &self.device)?.to_dtype(x.dtype())?;
            x = x.broadcast_mul(&scale)?;
        }
        if let (Some(table), Some(max)) = (&self.pos_embed, s.max_positions()) {
            let last = pass.pos.ids.flatten_all()?.max(0)?.to_scalar::<u32>()? as usize;
            if last >= max {
                return Err(ModelError::InvalidInput(format!(
                    "the sequence reaches position {last}, past the {} model's n_positions {max} \
                     (its learned position table)",
                    s.model_type
                )));
            }
            x = x.broadcast_add(&embedding(table, &pass.pos.ids)?)?;
        }
        Ok(x)
    }

    /// Runs layers `first..` on `x`: all of them, or (for [`LogitsAt::Nothing`] without a
    /// cache) up to the last one the hooks need.
    pub(crate) fn layers_from(
        &self,
        x: Tensor,
        first: usize,
        pass: &Pass,
        cache: Option<&mut KvCache>,
        at: &LogitsAt,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let end = match (at, hooks.last_layer()) {
            // a cache must see every layer
            (LogitsAt::Nothing, Some(last)) if cache.is_none() => (last + 1).min(self.layers.len()),
            _ => self.layers.len(),
        };
        self.run_layers(x, first..end, pass, cache, hooks)
    }

    /// Runs the layers in `range` on `x`, with `hooks` (and their slots of `cache`).
    pub(crate) fn run_layers(
        &self,
        mut x: Tensor,
        range: std::ops::Range<usize>,
        pass: &Pass,
        mut cache: Option<&mut KvCache>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        for i in range {
            let slot = cache.as_deref_mut().and_then(|c| c.layer_mut(i));
            x = self.layers[i].forward(
                x,
                pass.tables.as_ref(),
                &pass.pos,
                pass.offset,
                slot,
                hooks,
            )?;
        }
        Ok(x)
    }

    /// Final norm and unembedding of the rows `at` selects (`None` for nothing).
    pub(crate) fn head(
        &self,
        x: Tensor,
        pass: &Pass,
        mask: Option<&Tensor>,
        at: &LogitsAt,
    ) -> Result<Option<Tensor>> {
        if *at == LogitsAt::Nothing {
            return Ok(None);
        }
        let s = &*self.spec;
        let (b, t) = (pass.b, pass.t);
        let x = x.reshape((b * t, s.hidden_size))?;
        let (x, n) = match at.rows(b, t, mask)? {
            None => (x, t),
            Some((rows, n)) => (
                x.index_select(&Tensor::new(rows.as_slice(), &self.device)?, 0)?,
                n,
            ),
        };
        let x = self.final_norm.forward(&x)?;
        // The head is `[vocab, d]` (nn.Linear's layout): vene-kernels' linear reads it as
        // stored (one pass over it for a row or two, as for last-token logits).
        let mut logits = vene_kernels::linear(&x, &self.lm_head, None, WeightLayout::OutIn)
            .map_err(kernel_error)?;
        if let Some(cap) = s.head.final_softcap {
            logits = ((logits / cap)?.tanh()? * cap)?;
        }
        Ok(Some(logits.reshape((b, n, s.vocab_size))?))
    }

    /// The number of layers.
    pub(crate) fn layer_count(&self) -> usize {
        self.layers.len()
    }
}

/// One pass's checked inputs and positions.
pub(crate) struct Pass {
    pub ids: Tensor,
    pub b: usize,
    pub t: usize,
    pub offset: usize,
    pub pos: Positions,
    pub tables: Option<RotaryTables>,
}

/// Rows `ids` `[B, T]` of the table `[n, d]`, as `[B, T, d]`.
fn embedding(table: &Tensor, ids: &Tensor) -> Result<Tensor> {
    let (b, t) = ids.dims2()?;
    let d = table.dim(1)?;
    let rows = table.index_select(&ids.flatten_all()?, 0)?;
    Ok(rows.reshape((b, t, d))?)
}

impl HookableModel for Model {
    fn n_layers(&self) -> usize {
        self.spec.n_layers
    }

    fn model_type(&self) -> &str {
        &self.spec.model_type
    }

    fn component_shape(&self, component: Component) -> vene_hooks::Result<ComponentShape> {
        let s = &self.spec;
        let shape = |width, n_heads| ComponentShape { width, n_heads };
        Ok(match component.tap() {
            Component::QueryOutput | Component::AttentionValueOutput => {
                shape(s.q_width(), s.n_heads)
            }
            Component::KeyOutput | Component::ValueOutput => shape(s.kv_width(), s.n_kv_heads),
            Component::MlpActivation => shape(s.intermediate_size, 1),
            Component::AttentionWeight => shape(s.max_position_embeddings(), s.n_heads),
            Component::BlockInput
            | Component::BlockOutput
            | Component::AttentionInput
            | Component::AttentionOutput
            | Component::MlpInput
            | Component::MlpOutput => shape(s.hidden_size, 1),
            // Parallel attention and MLP read the same residual: there is no point between.
            Component::ResidMid if s.residual == crate::decoder::spec::Residual::Sequential => {
                shape(s.hidden_size, 1)
            }
            other => {
                return Err(HookError::ComponentUnavailable {
                    component: other,
                    model: s.model_type.clone(),
                })
            }
        })
    }
}

impl LanguageModel for Model {
    fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        self.run(input_ids, attention_mask, None, None, hooks)
    }

    fn forward_with_positions(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        position_ids: Option<&Tensor>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        self.run(input_ids, attention_mask, position_ids, None, hooks)
    }

    fn forward_logits_at(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        position_ids: Option<&Tensor>,
        logits: &LogitsAt,
        hooks: &mut dyn Hooks,
    ) -> Result<Option<Tensor>> {
        self.run_at(input_ids, attention_mask, position_ids, None, logits, hooks)
    }

    fn forward_prefixes(&self, inputs: Vec<Prefix>, n_layers: usize) -> Result<Vec<Prefix>> {
        crate::prefix::run_shared(self, inputs, n_layers)
    }

    fn forward_from_prefix(
        &self,
        prefix: &Prefix,
        logits: &LogitsAt,
        hooks: &mut dyn Hooks,
    ) -> Result<Option<Tensor>> {
        crate::prefix::continue_from(self, prefix, logits, hooks)
    }

    fn forward_cached(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        self.run(input_ids, attention_mask, None, Some(cache), hooks)
    }

    fn new_cache(&self) -> KvCache {
        KvCache::new(self.spec.n_layers)
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn vocab_size(&self) -> usize {
        self.spec.vocab_size
    }

    fn hidden_size(&self) -> usize {
        self.spec.hidden_size
    }

    /// Every family is a decoder with causal (or causal sliding-window) attention, and its
    /// position ids come from the mask's running sum or the caller: a prefix of the input
    /// gives the same activations on its positions.
    fn is_causal(&self) -> bool {
        true
    }

    fn to(&self, device: &Device, dtype: DType) -> Result<Self> {
        self.moved(device, dtype)
    }
}
