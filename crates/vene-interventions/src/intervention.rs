//! The [`Intervention`] trait and [`Selection`].

use candle_core::{DType, Device, Tensor, Var};

use crate::{Placement, Result};

/// Which dims of the representation an intervention acts on, for one call.
///
/// For autoencoder interventions the dims index the latent space; for rotated-space
/// interventions they index the rotated space.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Selection {
    /// The intervention's own dims: its `interchange_dim` (the first `interchange_dim` dims) or
    /// the dims set on it (`set_interchange_dim`).
    #[default]
    Default,
    /// These dims, for every example.
    Dims(Vec<usize>),
    /// `dims[b]` for example `b` (pyvene's `subspaces`, one list per example).
    PerExample(Vec<Vec<usize>>),
}

/// An intervention on a representation (pyvene's `Intervention` classes).
///
/// The facade gathers the intervened units of a component into `base` `[B, n_units, d]` and
/// calls [`Intervention::forward`]; the result is scattered back. Users implement this trait
/// for custom interventions.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_interventions::{Intervention, Selection, VanillaIntervention};
///
/// let iv = VanillaIntervention::new(4).with_interchange_dim(2);
/// let base = Tensor::zeros((1, 1, 4), candle_core::DType::F32, &Device::Cpu)?;
/// let source = Tensor::ones((1, 1, 4), candle_core::DType::F32, &Device::Cpu)?;
/// let out = iv.forward(&base, Some(&source), &Selection::Default)?;
/// assert_eq!(out.flatten_all()?.to_vec1::<f32>()?, vec![1.0, 1.0, 0.0, 0.0]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Intervention: Send + Sync + std::fmt::Debug {
    /// pyvene's class name: `"VanillaIntervention"`, `"AutoencoderIntervention"`, ...
    fn type_name(&self) -> &'static str;
    /// Width `d` of the representation it acts on.
    fn embed_dim(&self) -> usize;
    /// The intervened representation.
    ///
    /// `base`: `[B, n_units, d]`. `source`: `[B, n_units, d]` from a source run, or a constant
    /// `[d]` broadcast over batch and units. Returns `[B, n_units, d]` in `base`'s dtype
    /// (for a collect intervention: the collected activation).
    fn forward(
        &self,
        base: &Tensor,
        source: Option<&Tensor>,
        selection: &Selection,
    ) -> Result<Tensor>;
    /// [`Self::forward`] with per-call keyword arguments (pyvene's subspace dicts, e.g. a
    /// latent index and a magnitude for steering). Interventions that take such arguments
    /// override it; the default runs [`Self::forward`] when `args` is empty and refuses
    /// arguments otherwise, naming them.
    fn forward_with_args(
        &self,
        base: &Tensor,
        source: Option<&Tensor>,
        selection: &Selection,
        args: &crate::CallArgs,
    ) -> Result<Tensor> {
        if args.is_empty() {
            return self.forward(base, source, selection);
        }
        Err(crate::InterventionError::Unsupported(format!(
            "{} takes no per-call arguments, got {:?}",
            self.type_name(),
            args.keys()
        )))
    }
    /// Whether it needs a source. `false` for Zero, Collect, Noise, and Skip (whose source, the
    /// component's input, the facade provides).
    fn needs_source(&self) -> bool {
        true
    }
    /// Whether it collects activations instead of changing them.
    fn is_collect(&self) -> bool {
        false
    }
    /// Whether it acts in the latent space of an autoencoder (Autoencoder and JumpReLU
    /// autoencoder interventions): its `embed_dim` is then the autoencoder's input width.
    fn is_autoencoder(&self) -> bool {
        false
    }
    /// Whether it replaces the component's output by its input.
    fn is_skip(&self) -> bool {
        false
    }
    /// The temperature of its soft mask, for interventions that have one (Boundless and
    /// sigmoid-mask DAS); `None` (the default) for the others.
    fn temperature(&self) -> Option<f64> {
        None
    }
    /// Sets the temperature of its soft mask (pyvene's `set_temperature`), through a shared
    /// reference so that it works on interventions inside an intervenable model. The default,
    /// for interventions without one, is an error naming the type.
    fn set_temperature(&self, temperature: f64) -> Result<()> {
        let _ = temperature;
        Err(crate::InterventionError::Unsupported(format!(
            "{} has no temperature (only BoundlessRotatedSpaceIntervention, \
             SigmoidMaskRotatedSpaceIntervention and SigmoidMaskIntervention have one)",
            self.type_name()
        )))
    }
    /// Whether a save must write its [`Self::state_dict`]: it has trainable parameters, or
    /// state that is not one (a noise buffer, an autoencoder's frozen weights). The default:
    /// it has trainable parameters ([`Self::vars`] is not empty).
    fn saves_state(&self) -> bool {
        !self.vars().is_empty()
    }
    /// Trainable parameters (empty: not trainable).
    fn vars(&self) -> Vec<Var> {
        vec![]
    }
    /// The trainable parameters with their state-dict names (pyvene's `named_parameters`,
    /// without the key): each of [`Self::vars`] named by the first unused entry of
    /// [`Self::state_dict`] of the same shape, in order (`param_<i>` when none fits).
    /// Interventions whose names cannot be found that way override it.
    fn named_vars(&self) -> Result<Vec<(String, Var)>> {
        let vars = self.vars();
        if vars.is_empty() {
            return Ok(Vec::new());
        }
        let state = self.state_dict()?;
        let mut used = vec![false; state.len()];
        Ok(vars
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                let found = state
                    .iter()
                    .enumerate()
                    .find(|(j, (_, t))| !used[*j] && t.dims() == v.dims());
                let name = match found {
                    Some((j, (name, _))) => {
                        used[j] = true;
                        name.clone()
                    }
                    None => format!("param_{i}"),
                };
                (name, v)
            })
            .collect())
    }
    /// Tensors to save, by pyvene's names (`"rotate_layer.weight"`,
    /// `"autoencoder.encoder.0.weight"`, `"interchange_dim"`, `"embed_dim"`, ...). The
    /// default, for an intervention without state, is empty.
    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(Vec::new())
    }
    /// Everything needed besides the state dict to rebuild it (dims, latent_dim, k, ...).
    /// The default is `{"embed_dim": ...}`.
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({ "embed_dim": self.embed_dim() })
    }
    /// A copy placed as `placement` says: its parameters on the placement's device and in its
    /// dtype, an autoencoder it holds in the placement's autoencoder dtype (what the placement
    /// leaves unset stays as it is). The one method that moves an intervention; the others
    /// ([`Self::to_device`], [`Self::to_dtype`], [`Self::to_device_dtype`]) call it.
    fn to(&self, placement: &Placement) -> Result<Box<dyn Intervention>>;
    /// A copy on `device`, dtypes unchanged.
    fn to_device(&self, device: &Device) -> Result<Box<dyn Intervention>> {
        self.to(&Placement::on(device))
    }
    /// A copy with parameters in `dtype` (an autoencoder it holds included).
    fn to_dtype(&self, dtype: DType) -> Result<Box<dyn Intervention>> {
        self.to(&Placement::default().with_dtype(dtype))
    }
    /// A copy on `device` with its parameters in `dtype`, and the autoencoder it holds (if
    /// any) in `autoencoder_dtype`, the precision the autoencoder math then runs in (mixed
    /// precision: a bf16 model with an f32 SAE, or the reverse).
    fn to_device_dtype(
        &self,
        device: &Device,
        dtype: DType,
        autoencoder_dtype: DType,
    ) -> Result<Box<dyn Intervention>> {
        self.to(&Placement::new(device, dtype).with_autoencoder_dtype(autoencoder_dtype))
    }
}
