//! The hook trait a model calls at every site.

use candle_core::Tensor;

use crate::{Result, Site};

/// Context of one hook call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HookCall {
    /// Where the model is.
    pub site: Site,
    /// Absolute position of the first token of this forward pass in its sequence: 0 for a
    /// full forward, the KV-cache length for a generation step.
    pub seq_offset: usize,
}

/// Receives the activations of a forward pass, one site at a time.
///
/// A model calls [`Hooks::is_active`] before anything else at each site; only when it answers
/// `true` does the model call [`Hooks::on_activation`]. A set of hooks that is active nowhere
/// costs one virtual call per site: no copy, no allocation.
///
/// Activations are passed as the model computes them: `[batch, seq, width]` for every component
/// but `attention_weight` (`[batch, heads, query, key]`). Head components are never called;
/// a hook on `head_query_output` registers at `query_output` and splits heads itself (see
/// [`crate::split_heads`]).
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_hooks::{apply_hook, Component, HookCall, Hooks, Site};
///
/// /// Doubles the block output of layer 0.
/// struct Double;
/// impl Hooks for Double {
///     fn is_active(&self, site: Site) -> bool {
///         site == Site::new(0, Component::BlockOutput)
///     }
///     fn on_activation(&mut self, _call: HookCall, x: Tensor) -> vene_hooks::Result<Tensor> {
///         Ok((x * 2.0)?)
///     }
/// }
/// let x = Tensor::ones((1, 2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
/// let y = apply_hook(&mut Double, Site::new(0, Component::BlockOutput), 0, x.clone()).unwrap();
/// assert_eq!(y.sum_all().unwrap().to_scalar::<f32>().unwrap(), 12.0);
/// let z = apply_hook(&mut Double, Site::new(1, Component::BlockOutput), 0, x).unwrap();
/// assert_eq!(z.sum_all().unwrap().to_scalar::<f32>().unwrap(), 6.0);
/// ```
pub trait Hooks {
    /// Whether this hook set wants to see `site`. Must be cheap.
    fn is_active(&self, site: Site) -> bool;

    /// Called with the activation at an active site; returns the activation the model
    /// continues with (the same tensor to only read it).
    fn on_activation(&mut self, call: HookCall, activation: Tensor) -> Result<Tensor>;

    /// The last layer whose sites this hook set still needs, when it needs nothing after it.
    /// A forward run only for its hooks (no logits asked for) may stop after that layer;
    /// `None` (the default) means every layer is needed.
    ///
    /// ```
    /// use vene_hooks::{Hooks, NoHooks};
    /// assert_eq!(NoHooks.last_layer(), None);
    /// ```
    fn last_layer(&self) -> Option<usize> {
        None
    }
}

/// A hook set that is active nowhere: a plain forward pass.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks for NoHooks {
    #[inline]
    fn is_active(&self, _site: Site) -> bool {
        false
    }

    fn on_activation(&mut self, _call: HookCall, activation: Tensor) -> Result<Tensor> {
        Ok(activation)
    }
}

/// What models call at each site: passes `activation` to `hooks` when the site is active,
/// else returns it untouched (a move, no copy).
#[inline]
pub fn apply_hook(
    hooks: &mut dyn Hooks,
    site: Site,
    seq_offset: usize,
    activation: Tensor,
) -> Result<Tensor> {
    if hooks.is_active(site) {
        hooks.on_activation(HookCall { site, seq_offset }, activation)
    } else {
        Ok(activation)
    }
}

/// Width and head layout of a component in a given model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ComponentShape {
    /// The last dimension of the activation the model passes at the component's tap.
    pub width: usize,
    /// Number of heads the tap splits into (1 for non-head components; for
    /// `attention_weight`, the number of attention heads).
    pub n_heads: usize,
}

impl ComponentShape {
    /// Width of one head (`width / n_heads`).
    pub fn head_dim(&self) -> usize {
        self.width / self.n_heads.max(1)
    }
}

/// What a hookable model tells about its sites. Implemented by every model of vene-models.
pub trait HookableModel {
    /// Number of layers.
    fn n_layers(&self) -> usize;
    /// Short name of the architecture ("gpt2", "llama").
    fn model_type(&self) -> &str;
    /// Shape of `component` (head components give the head layout of their tap), or an error
    /// when the model has no such component.
    fn component_shape(&self, component: crate::Component) -> Result<ComponentShape>;
    /// Checks that `site` exists in this model: layer in range, component available.
    fn check_site(&self, site: Site) -> Result<()> {
        if site.layer >= self.n_layers() {
            return Err(crate::HookError::LayerOutOfRange {
                layer: site.layer,
                n_layers: self.n_layers(),
            });
        }
        self.component_shape(site.component).map(|_| ())
    }
}
