//! Activations of one forward pass, by site: what TransformerLens's `run_with_cache` returns.

use std::collections::BTreeMap;

use candle_core::Tensor;

use crate::{site_from_name, Component, HookCall, Hooks, Result, Site};

/// The activations a forward pass passed through its hooks, keyed by [`Site`]; filled by
/// [`CacheHooks`] (e.g. through `LanguageModel::run_with_cache` of vene-models).
///
/// Each activation is kept as the model computed it (`[batch, seq, width]`, or
/// `[batch, heads, query, key]` for `attention_weight`), detached from any autograd graph.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_hooks::{apply_hook, ActivationCache, CacheHooks, Component, Site};
///
/// let mut hooks = CacheHooks::new(|site: Site| site.component == Component::BlockOutput);
/// let x = Tensor::ones((1, 2, 3), candle_core::DType::F32, &Device::Cpu)?;
/// apply_hook(&mut hooks, Site::new(0, Component::BlockOutput), 0, x.clone())?;
/// apply_hook(&mut hooks, Site::new(0, Component::MlpOutput), 0, x)?; // not kept
/// let cache: ActivationCache = hooks.into_cache();
/// assert_eq!(cache.len(), 1);
/// assert_eq!(cache.get(0, Component::BlockOutput).unwrap().dims(), &[1, 2, 3]);
/// assert!(cache.get_by_name("blocks.0.hook_resid_post").is_some());
/// // block_input of layer 1 reads the same activations as block_output of layer 0.
/// assert!(cache.get_by_name("blocks.1.hook_resid_pre").is_some());
/// assert!(cache.get_by_name("blocks.0.hook_mlp_out").is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct ActivationCache {
    activations: BTreeMap<Site, Tensor>,
}

impl ActivationCache {
    /// The activation of `component` at `layer`, if it was kept.
    pub fn get(&self, layer: usize, component: Component) -> Option<&Tensor> {
        self.activations.get(&Site::new(layer, component))
    }

    /// The activation of the site named `name` by TransformerLens / SAELens, a Hugging Face
    /// module path or dictionary_learning ([`site_from_name`]), if it was kept.
    /// `block_input` of layer l > 0 is also found as `block_output` of layer l - 1.
    pub fn get_by_name(&self, name: &str) -> Option<&Tensor> {
        let (layer, component) = site_from_name(name)?;
        let site = Site::new(layer, component);
        self.activations
            .get(&site)
            .or_else(|| self.activations.get(&site.canonical()))
    }

    /// The sites kept, in order (by layer, then component).
    pub fn sites(&self) -> impl Iterator<Item = Site> + '_ {
        self.activations.keys().copied()
    }

    /// Number of activations kept.
    pub fn len(&self) -> usize {
        self.activations.len()
    }

    /// Whether nothing was kept.
    pub fn is_empty(&self) -> bool {
        self.activations.is_empty()
    }

    /// The activations by site.
    pub fn into_map(self) -> BTreeMap<Site, Tensor> {
        self.activations
    }
}

/// Hooks that keep the activation of every site `filter` accepts, reading it only (the forward
/// pass is unchanged). Head components are never called by a model: filter on their tap
/// (`query_output` for `head_query_output`).
pub struct CacheHooks<F: Fn(Site) -> bool> {
    filter: F,
    stop_after: Option<usize>,
    cache: ActivationCache,
}

impl<F: Fn(Site) -> bool> CacheHooks<F> {
    /// Keeps the sites `filter` accepts.
    pub fn new(filter: F) -> Self {
        Self {
            filter,
            stop_after: None,
            cache: ActivationCache::default(),
        }
    }

    /// Tells a model run without logits that nothing after `layer` is needed, so it may stop
    /// there (TransformerLens's `stop_at_layer`, inclusive here).
    pub fn stop_after(mut self, layer: usize) -> Self {
        self.stop_after = Some(layer);
        self
    }

    /// The activations kept.
    pub fn into_cache(self) -> ActivationCache {
        self.cache
    }
}

impl<F: Fn(Site) -> bool> Hooks for CacheHooks<F> {
    fn is_active(&self, site: Site) -> bool {
        (self.filter)(site) && self.stop_after.is_none_or(|l| site.layer <= l)
    }

    fn on_activation(&mut self, call: HookCall, activation: Tensor) -> Result<Tensor> {
        self.cache
            .activations
            .insert(call.site, activation.detach());
        Ok(activation)
    }

    fn last_layer(&self) -> Option<usize> {
        self.stop_after
    }
}
