//! The trait every vene model implements.

use candle_core::{DType, Device, Tensor};
use vene_hooks::{HookableModel, Hooks};

use crate::{KvCache, LogitsAt, Prefix, Result};

/// A causal language model that calls a hook at every component of every layer.
pub trait LanguageModel: HookableModel + Send + Sync + std::fmt::Debug {
    /// Logits `[B, T, vocab]` for every position of `input_ids` `[B, T]` (u32 or i64).
    ///
    /// `attention_mask` `[B, T]` of 0/1 marks real tokens (left or right padding): position ids
    /// become `cumsum(mask) - 1` and padded keys are masked out, so real tokens get the logits
    /// they would get alone. Hooks are called with `seq_offset` 0.
    fn forward(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor>;

    /// As [`LanguageModel::forward`], with explicit position ids `[B, T]` (as HF's
    /// `position_ids`); `None` gives `forward`'s positions. Models without positions to set
    /// refuse explicit ones.
    fn forward_with_positions(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        position_ids: Option<&Tensor>,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        match position_ids {
            None => self.forward(input_ids, attention_mask, hooks),
            Some(_) => Err(crate::ModelError::InvalidInput(format!(
                "{} does not take explicit position ids",
                self.model_type()
            ))),
        }
    }

    /// One forward pass that keeps the activation of every site `filter` accepts, as
    /// TransformerLens's `run_with_cache`: the logits where `logits` says (`None` for
    /// [`LogitsAt::Nothing`]) and the activations by site. Head components are not called by
    /// models: ask for their tap (`query_output` for `head_query_output`). With
    /// [`LogitsAt::Nothing`], `stop_after` lets the pass end after that layer.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use vene_hooks::{Component, Site};
    /// use vene_models::{Gpt2Config, LanguageModel, LogitsAt, Model};
    ///
    /// let (model, _) = Model::random_gpt2(&Gpt2Config::tiny(32, 8, 2, 2), DType::F32, &Device::Cpu)?;
    /// let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
    /// let residual = |s: Site| matches!(s.component, Component::BlockInput | Component::BlockOutput);
    /// let (logits, cache) = model.run_with_cache(&ids, &LogitsAt::All, &residual, None)?;
    /// assert_eq!(logits.unwrap().dims(), &[1, 3, 32]);
    /// assert_eq!(cache.len(), 4); // 2 layers x {block_input, block_output}
    /// let pre = cache.get_by_name("blocks.1.hook_resid_pre").unwrap();
    /// let post = cache.get(0, Component::BlockOutput).unwrap();
    /// assert_eq!((pre - post)?.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn run_with_cache(
        &self,
        input_ids: &Tensor,
        logits: &LogitsAt,
        filter: &dyn Fn(vene_hooks::Site) -> bool,
        stop_after: Option<usize>,
    ) -> Result<(Option<Tensor>, vene_hooks::ActivationCache)> {
        let mut hooks = vene_hooks::CacheHooks::new(filter);
        if let Some(layer) = stop_after {
            hooks = hooks.stop_after(layer);
        }
        let out = self.forward_logits_at(input_ids, None, None, logits, &mut hooks)?;
        Ok((out, hooks.into_cache()))
    }

    /// As [`LanguageModel::forward_with_positions`], with logits only where `logits` says
    /// (`[B, n, vocab]`; see [`LogitsAt`]). With [`LogitsAt::Nothing`] the model runs only as
    /// far as `hooks` need ([`Hooks::last_layer`]) and returns `None`.
    ///
    /// The default computes every logit and selects; models override it to skip the work.
    fn forward_logits_at(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        position_ids: Option<&Tensor>,
        logits: &LogitsAt,
        hooks: &mut dyn Hooks,
    ) -> Result<Option<Tensor>> {
        let all = self.forward_with_positions(input_ids, attention_mask, position_ids, hooks)?;
        if *logits == LogitsAt::Nothing {
            return Ok(None);
        }
        let (b, t, v) = all.dims3()?;
        Ok(Some(match logits.rows(b, t, attention_mask)? {
            None => all,
            Some((rows, n)) => {
                let idx = Tensor::new(rows.as_slice(), all.device())?;
                all.reshape((b * t, v))?
                    .index_select(&idx, 0)?
                    .reshape((b, n, v))?
            }
        }))
    }

    /// Runs `inputs` (of one length) as one batch through the first `n_layers` layers, with no
    /// hooks, and returns each input with its residual stream, to go on with
    /// [`LanguageModel::forward_from_prefix`] (see [`Prefix`]). Inputs that cannot share (of
    /// different lengths, or fewer than two) come back as they were. The default shares
    /// nothing.
    fn forward_prefixes(&self, inputs: Vec<Prefix>, n_layers: usize) -> Result<Vec<Prefix>> {
        let _ = n_layers;
        Ok(inputs)
    }

    /// Goes on from `prefix` (after the layers it has run; from the start when it has run none)
    /// with `hooks`, which must not need a layer the prefix already ran; logits as in
    /// [`LanguageModel::forward_logits_at`].
    fn forward_from_prefix(
        &self,
        prefix: &Prefix,
        logits: &LogitsAt,
        hooks: &mut dyn Hooks,
    ) -> Result<Option<Tensor>> {
        if prefix.residual.is_some() {
            return Err(crate::ModelError::InvalidInput(format!(
                "{} cannot go on from a shared prefix it did not make",
                self.model_type()
            )));
        }
        self.forward_logits_at(
            &prefix.ids,
            prefix.mask.as_ref(),
            prefix.position_ids.as_ref(),
            logits,
            hooks,
        )
    }

    /// Logits for the new tokens `input_ids` `[B, T_new]` after the tokens in `cache`, which is
    /// extended with them. `attention_mask`, when given, covers the cached and the new tokens
    /// (`[B, cache.len() + T_new]`). Hooks see only the new tokens, with `seq_offset` =
    /// `cache.len()` before the call.
    fn forward_cached(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        cache: &mut KvCache,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor>;

    /// An empty KV cache for this model.
    fn new_cache(&self) -> KvCache;

    /// The device the weights live on.
    fn device(&self) -> &Device;

    /// The dtype of the weights and activations.
    fn dtype(&self) -> DType;

    /// Vocabulary size (last dimension of the logits).
    fn vocab_size(&self) -> usize;

    /// Width of the residual stream.
    fn hidden_size(&self) -> usize;

    /// Whether the model is causal: every activation at position `p` depends only on the
    /// inputs at positions `0..=p` (ids, mask and position ids), so a run on the first `p + 1`
    /// positions gives the same activations there. The facade then runs a source only as far
    /// as the last position it reads. The default, `false`, assumes nothing of a model.
    fn is_causal(&self) -> bool {
        false
    }

    /// A copy with every weight on `device` in `dtype` (activations then run in `dtype`).
    /// The original is left as it is; tied embeddings stay one tensor.
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use vene_models::{Gpt2Config, LanguageModel, Model};
    /// let (model, _) = Model::random_gpt2(&Gpt2Config::tiny(32, 8, 1, 2), DType::F32, &Device::Cpu)?;
    /// let half = model.to(&Device::Cpu, DType::BF16)?;
    /// assert_eq!((model.dtype(), half.dtype()), (DType::F32, DType::BF16));
    /// # Ok::<(), vene_models::ModelError>(())
    /// ```
    fn to(&self, device: &Device, dtype: DType) -> Result<Self>
    where
        Self: Sized;
}
