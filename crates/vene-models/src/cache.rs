//! The key/value cache used for generation.

use candle_core::Tensor;

use crate::{ModelError, Result};

/// Keys and values of the tokens seen so far, per layer, for incremental decoding.
///
/// The cache is an explicit object passed to
/// [`LanguageModel::forward_cached`](crate::LanguageModel::forward_cached), so that a model stays
/// `&self` (and `Send + Sync`) while several generations run side by side.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_hooks::NoHooks;
/// use vene_models::{Gpt2Config, LanguageModel, Model};
///
/// let model = Model::random_gpt2(&Gpt2Config::tiny(64, 16, 2, 2), DType::F32, &Device::Cpu)?.0;
/// let mut cache = model.new_cache();
/// let prompt = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
/// model.forward_cached(&prompt, None, &mut cache, &mut NoHooks)?;
/// assert_eq!(cache.len(), 3);
/// let next = Tensor::new(&[[4u32]], &Device::Cpu)?;
/// let logits = model.forward_cached(&next, None, &mut cache, &mut NoHooks)?;
/// assert_eq!(logits.dims(), &[1, 1, 64]);
/// assert_eq!(cache.len(), 4);
/// # Ok::<(), vene_models::ModelError>(())
/// ```
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
    len: usize,
}

impl KvCache {
    /// An empty cache for a model of `n_layers` layers.
    pub fn new(n_layers: usize) -> Self {
        Self {
            layers: vec![None; n_layers],
            len: 0,
        }
    }

    /// Number of tokens cached (the position offset of the next token).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no token is cached.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of layers the cache is for.
    pub fn n_layers(&self) -> usize {
        self.layers.len()
    }

    /// Forgets every cached token.
    pub fn clear(&mut self) {
        self.layers.iter_mut().for_each(|l| *l = None);
        self.len = 0;
    }

    /// Checks that the cache fits a model of `n_layers` layers and a batch of `batch`.
    pub(crate) fn check(&self, n_layers: usize, batch: usize) -> Result<()> {
        if self.layers.len() != n_layers {
            return Err(ModelError::InvalidInput(format!(
                "KV cache has {} layers, the model has {n_layers}",
                self.layers.len()
            )));
        }
        if let Some(Some((k, _))) = self.layers.first() {
            let cached_batch = k.dim(0)?;
            if cached_batch != batch {
                return Err(ModelError::InvalidInput(format!(
                    "KV cache holds a batch of {cached_batch}, the input has a batch of {batch}"
                )));
            }
        }
        Ok(())
    }

    /// The slot of one layer.
    pub(crate) fn layer_mut(&mut self, layer: usize) -> CacheSlot<'_> {
        self.layers.get_mut(layer)
    }

    /// Records that `n` more tokens were appended to every layer.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}

/// One layer's slot in a [`KvCache`] (`None` when a pass runs without a cache).
pub(crate) type CacheSlot<'a> = Option<&'a mut Option<(Tensor, Tensor)>>;

/// Appends `k`, `v` (`[B, H, T, hd]`) to a layer slot; returns the full keys and values.
pub(crate) fn append(slot: CacheSlot<'_>, k: Tensor, v: Tensor) -> Result<(Tensor, Tensor)> {
    let Some(slot) = slot else {
        return Ok((k, v));
    };
    let (k, v) = match slot.take() {
        None => (k, v),
        Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
    };
    *slot = Some((k.clone(), v.clone()));
    Ok((k, v))
}
