//! Constructors of interventions defined outside vene, by type name, so that configs naming
//! them build and saved folders holding them load.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use candle_core::{DType, Device, Tensor};

use crate::{Intervention, InterventionError, Result, TYPE_NAMES};

/// What a registered constructor is given: the same inputs as
/// [`crate::build_intervention`]'s (the width, the hyperparameters the intervention's
/// [`Intervention::hyperparams`] returned, its saved state dict when loading, where to put it).
#[derive(Debug)]
pub struct BuildArgs<'a> {
    /// Width `d` of the representation.
    pub embed_dim: usize,
    /// What [`Intervention::hyperparams`] returned when it was saved, or a config's
    /// hyperparameters.
    pub hyperparams: &'a serde_json::Value,
    /// What [`Intervention::state_dict`] returned when it was saved (empty for a fresh one).
    pub state: &'a HashMap<String, Tensor>,
    /// Where its tensors go.
    pub device: &'a Device,
    /// The dtype of its parameters.
    pub dtype: DType,
}

/// A constructor of a registered intervention type.
pub type InterventionConstructor =
    Arc<dyn Fn(&BuildArgs<'_>) -> Result<Box<dyn Intervention>> + Send + Sync>;

fn registry() -> &'static RwLock<HashMap<String, InterventionConstructor>> {
    static REGISTRY: OnceLock<RwLock<HashMap<String, InterventionConstructor>>> = OnceLock::new();
    REGISTRY.get_or_init(|| RwLock::new(HashMap::new()))
}

/// Registers `constructor` for interventions whose [`Intervention::type_name`] is `type_name`:
/// from then on [`crate::build_intervention`] (and so configs that name the type, and
/// `IntervenableModel::load` of folders that hold it) builds them with it. Registering a name
/// again replaces its constructor; pyvene's built-in names are refused.
///
/// ```
/// use candle_core::{Device, DType, Tensor, Var};
/// use vene_interventions::{
///     build_intervention, register_intervention, Intervention, Placement, Selection,
/// };
///
/// /// base + scale * source.
/// #[derive(Debug)]
/// struct Scaled { d: usize, scale: f64 }
/// impl Intervention for Scaled {
///     fn type_name(&self) -> &'static str { "ScaledAddition" }
///     fn embed_dim(&self) -> usize { self.d }
///     fn forward(&self, base: &Tensor, source: Option<&Tensor>, _: &Selection) -> vene_interventions::Result<Tensor> {
///         Ok((base + (source.unwrap() * self.scale)?)?)
///     }
///     fn hyperparams(&self) -> serde_json::Value { serde_json::json!({ "scale": self.scale }) }
///     fn to(&self, _: &Placement) -> vene_interventions::Result<Box<dyn Intervention>> { Ok(Box::new(Scaled { ..*self })) }
/// }
///
/// register_intervention("ScaledAddition", |a| {
///     let scale = a.hyperparams.get("scale").and_then(|v| v.as_f64()).unwrap_or(1.0);
///     Ok(Box::new(Scaled { d: a.embed_dim, scale }))
/// })?;
/// let iv = build_intervention("ScaledAddition", 4, &serde_json::json!({"scale": 2.0}),
///     &Default::default(), &Device::Cpu, DType::F32)?;
/// assert_eq!(iv.hyperparams()["scale"], 2.0);
/// assert!(register_intervention("VanillaIntervention", |a| unreachable!()).is_err());
/// # Ok::<(), vene_interventions::InterventionError>(())
/// ```
pub fn register_intervention(
    type_name: &str,
    constructor: impl Fn(&BuildArgs<'_>) -> Result<Box<dyn Intervention>> + Send + Sync + 'static,
) -> Result<()> {
    let name = type_name.trim();
    if name.is_empty() || TYPE_NAMES.contains(&name) {
        return Err(InterventionError::Unsupported(format!(
            "cannot register an intervention type named {type_name:?}: {}",
            if name.is_empty() {
                "the name is empty"
            } else {
                "it is one of pyvene's built-in types"
            }
        )));
    }
    registry()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), Arc::new(constructor));
    Ok(())
}

/// The names registered with [`register_intervention`], sorted.
pub fn registered_interventions() -> Vec<String> {
    let mut names: Vec<String> = registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

/// The constructor registered for the bare type name `name`, if any.
pub(crate) fn registered(name: &str) -> Option<InterventionConstructor> {
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .cloned()
}
