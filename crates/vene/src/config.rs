//! Configs: where to intervene and with what ([`RepresentationConfig`], [`IntervenableConfig`]).

use std::sync::Arc;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use vene_hooks::{Component, Unit};
use vene_interventions::Intervention;

use crate::{Result, VeneError};

/// The newest `format_version` of `config.json` this vene writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// How several interventions combine (pyvene's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every source run feeds the base run directly.
    #[default]
    Parallel,
    /// Source 0's intervened run feeds source 1, ..., the last feeds the base.
    Serial,
}

fn default_component() -> Component {
    Component::BlockOutput
}

fn default_units() -> usize {
    1
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// One intervention: where (layer, component, unit) and what (type, hyperparameters).
///
/// Field names and defaults are pyvene's (`unit` "pos", `max_number_of_units` 1, component
/// `block_output`). An intervention object can be given instead of a type name
/// ([`RepresentationConfig::intervention`]); it is not serialized, but its type and state are
/// saved by [`crate::IntervenableModel::save`].
///
/// ```
/// use vene::{RepresentationConfig, hooks::{Component, Unit}};
/// let r: RepresentationConfig =
///     serde_json::from_str(r#"{"layer": 1, "component": "mlp_output", "intervention": "ZeroIntervention"}"#)?;
/// assert_eq!(r.component, Component::MlpOutput);
/// assert_eq!(r.unit, Unit::Pos);
/// assert_eq!(r.max_number_of_units, 1);
/// assert_eq!(r.intervention_type.as_deref(), Some("ZeroIntervention"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Serialize, Deserialize)]
pub struct RepresentationConfig {
    /// Layer index, from 0.
    #[serde(default)]
    pub layer: usize,
    /// Component of the layer.
    #[serde(default = "default_component")]
    pub component: Component,
    /// What the unit locations index.
    #[serde(default)]
    pub unit: Unit,
    /// Units per example (part of the key; the intervention is applied per unit).
    #[serde(default = "default_units")]
    pub max_number_of_units: usize,
    /// pyvene's class name of the intervention (`"VanillaIntervention"`, ...); the JSON key
    /// `intervention` is accepted too. `None` with no [`Self::intervention`]: Vanilla.
    #[serde(
        default,
        alias = "intervention",
        skip_serializing_if = "Option::is_none"
    )]
    pub intervention_type: Option<String>,
    /// Rank of a low-rank rotation (also the latent width of JumpReLU in pyvene).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_rank_dimension: Option<usize>,
    /// Named subspaces: subspace `i` is the range `[a, b)` of entry `i` (or its explicit
    /// indices when the entry is not a pair).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subspace_partition: Option<Vec<Vec<usize>>>,
    /// Interventions with the same group key share one source; groups run in ascending order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_key: Option<i64>,
    /// Interventions with the same link key share one intervention (and its parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intervention_link_key: Option<i64>,
    /// Latent width of an autoencoder intervention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latent_dim: Option<usize>,
    /// Further hyperparameters passed to the intervention's constructor
    /// (`interchange_dim`, `dims`, `k`, `temperature`, ...).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub hyperparams: serde_json::Map<String, serde_json::Value>,
    /// A ready intervention object (pyvene's `intervention` field); takes precedence over
    /// `intervention_type`.
    #[serde(skip)]
    pub intervention: Option<Arc<dyn Intervention>>,
    /// A constant source vector `[d]` (pyvene's `source_representation`).
    #[serde(skip)]
    pub source_representation: Option<Tensor>,
}

impl std::fmt::Debug for RepresentationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepresentationConfig")
            .field("layer", &self.layer)
            .field("component", &self.component)
            .field("unit", &self.unit)
            .field("max_number_of_units", &self.max_number_of_units)
            .field("intervention_type", &self.type_name())
            .field("low_rank_dimension", &self.low_rank_dimension)
            .field("subspace_partition", &self.subspace_partition)
            .field("group_key", &self.group_key)
            .field("intervention_link_key", &self.intervention_link_key)
            .field("latent_dim", &self.latent_dim)
            .field("hyperparams", &self.hyperparams)
            .field(
                "source_representation",
                &self
                    .source_representation
                    .as_ref()
                    .map(|t| t.dims().to_vec()),
            )
            .finish()
    }
}

impl Default for RepresentationConfig {
    fn default() -> Self {
        Self::new(0, Component::BlockOutput)
    }
}

impl RepresentationConfig {
    /// A Vanilla intervention at `component` of `layer`, unit `pos`, one unit.
    pub fn new(layer: usize, component: Component) -> Self {
        Self {
            layer,
            component,
            unit: if component.is_head() {
                Unit::HPos
            } else {
                Unit::Pos
            },
            max_number_of_units: 1,
            intervention_type: None,
            low_rank_dimension: None,
            subspace_partition: None,
            group_key: None,
            intervention_link_key: None,
            latent_dim: None,
            hyperparams: serde_json::Map::new(),
            intervention: None,
            source_representation: None,
        }
    }

    /// Sets the unit.
    pub fn unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }

    /// Sets `max_number_of_units`.
    pub fn max_number_of_units(mut self, n: usize) -> Self {
        self.max_number_of_units = n;
        self
    }

    /// Sets the intervention type by pyvene's class name.
    pub fn intervention_type(mut self, type_name: impl Into<String>) -> Self {
        self.intervention_type = Some(type_name.into());
        self
    }

    /// Uses a ready intervention object.
    pub fn intervention(mut self, intervention: Arc<dyn Intervention>) -> Self {
        self.intervention = Some(intervention);
        self
    }

    /// The same representation with `intervention`'s type name and hyperparameters written
    /// into `intervention_type` and `hyperparams` (so that JSON can carry it).
    pub(crate) fn with_intervention(mut self, intervention: &dyn Intervention) -> Self {
        self.intervention_type = Some(intervention.type_name().to_string());
        if let serde_json::Value::Object(h) = intervention.hyperparams() {
            for (k, v) in h {
                self.hyperparams.insert(k, v);
            }
        }
        self
    }

    /// The same representation without its intervention object and constant source (the
    /// parts JSON cannot carry).
    pub(crate) fn without_objects(mut self) -> Self {
        self.intervention = None;
        self.source_representation = None;
        self
    }

    /// Sets `low_rank_dimension`.
    pub fn low_rank_dimension(mut self, k: usize) -> Self {
        self.low_rank_dimension = Some(k);
        self
    }

    /// Sets the subspace partition.
    pub fn subspace_partition(mut self, partition: Vec<Vec<usize>>) -> Self {
        self.subspace_partition = Some(partition);
        self
    }

    /// Sets the group key.
    pub fn group_key(mut self, key: i64) -> Self {
        self.group_key = Some(key);
        self
    }

    /// Sets the link key (shared intervention).
    pub fn intervention_link_key(mut self, key: i64) -> Self {
        self.intervention_link_key = Some(key);
        self
    }

    /// Sets the latent width of an autoencoder intervention.
    pub fn latent_dim(mut self, latent_dim: usize) -> Self {
        self.latent_dim = Some(latent_dim);
        self
    }

    /// Adds a hyperparameter for the intervention's constructor.
    pub fn hyperparam(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.hyperparams.insert(key.into(), value);
        self
    }

    /// Sets a constant source vector `[d]`.
    pub fn source_representation(mut self, source: Tensor) -> Self {
        self.source_representation = Some(source);
        self
    }

    /// The intervention's type name: the object's, else `intervention_type`, else Vanilla.
    pub fn type_name(&self) -> &str {
        match (&self.intervention, &self.intervention_type) {
            (Some(iv), _) => iv.type_name(),
            (None, Some(t)) => t.as_str(),
            (None, None) => "VanillaIntervention",
        }
    }

    /// Checks every field that has a valid range: `max_number_of_units`, `low_rank_dimension`
    /// and `latent_dim` at least 1, and a `subspace_partition` whose parts are non-empty,
    /// ranges `[a, b]` with `a < b`, explicit index lists without repeats, and no two parts
    /// overlapping. (Widths are checked when the model is built: [`crate::IntervenableModel::new`].)
    /// Errors name the representation (`index` and key proposal).
    ///
    /// ```
    /// use vene::{RepresentationConfig, hooks::Component};
    /// let ok = RepresentationConfig::new(0, Component::BlockOutput)
    ///     .subspace_partition(vec![vec![0, 4], vec![4, 8]]);
    /// assert!(ok.validate(0).is_ok());
    /// let reversed = ok.clone().subspace_partition(vec![vec![8, 4]]);
    /// assert!(reversed.validate(0).unwrap_err().to_string().contains("[8, 4]"));
    /// let overlapping = ok.subspace_partition(vec![vec![0, 4], vec![2, 6]]);
    /// assert!(overlapping.validate(0).is_err());
    /// ```
    pub fn validate(&self, index: usize) -> Result<()> {
        let err = |m: String| {
            VeneError::Config(format!(
                "representation {index} ({}): {m}",
                self.key_proposal()
            ))
        };
        if self.max_number_of_units == 0 {
            return Err(err("max_number_of_units must be at least 1".into()));
        }
        if self.low_rank_dimension == Some(0) {
            return Err(err("low_rank_dimension must be at least 1".into()));
        }
        if self.latent_dim == Some(0) {
            return Err(err("latent_dim must be at least 1".into()));
        }
        if let Some(p) = &self.subspace_partition {
            // every part as half-open intervals, checked without expanding them
            let mut intervals: Vec<(usize, usize, usize)> = Vec::new();
            for (i, part) in p.iter().enumerate() {
                match part.as_slice() {
                    [] => return Err(err(format!("subspace_partition part {i} is empty"))),
                    [a, b] => {
                        if a >= b {
                            return Err(err(format!(
                                "subspace_partition part {i} [{a}, {b}] is not a range [start, end) with start < end"
                            )));
                        }
                        intervals.push((*a, *b, i));
                    }
                    dims => {
                        for &d in dims {
                            let end = d.checked_add(1).ok_or_else(|| {
                                err(format!("subspace_partition part {i}: dim {d} is too large"))
                            })?;
                            intervals.push((d, end, i));
                        }
                    }
                }
            }
            intervals.sort_unstable();
            for w in intervals.windows(2) {
                let ((_, end0, i0), (start1, _, i1)) = (w[0], w[1]);
                if start1 < end0 {
                    return Err(err(if i0 == i1 {
                        format!("subspace_partition part {i0} repeats dim {start1}")
                    } else {
                        format!("subspace_partition parts {i0} and {i1} overlap at dim {start1}")
                    }));
                }
            }
        }
        Ok(())
    }

    /// Checks the `subspace_partition` against the width `width` of the space it indexes.
    pub(crate) fn validate_partition_width(&self, index: usize, width: usize) -> Result<()> {
        if let Some(p) = &self.subspace_partition {
            for (i, part) in p.iter().enumerate() {
                let end = match part.as_slice() {
                    [_, b] => *b,
                    dims => dims.iter().max().map_or(0, |m| m + 1),
                };
                if end > width {
                    return Err(VeneError::Config(format!(
                        "representation {index} ({}): subspace_partition part {i} {part:?} reaches past the width {width} of the space it indexes",
                        self.key_proposal()
                    )));
                }
            }
        }
        Ok(())
    }

    /// pyvene's key proposal (without the `#n` collision counter):
    /// `layer_{l}_comp_{c}_unit_{u}_nunit_{n}`, with `.` in the unit written `_`.
    pub fn key_proposal(&self) -> String {
        format!(
            "layer_{}_comp_{}_unit_{}_nunit_{}",
            self.layer,
            self.component,
            self.unit.as_str().replace('.', "_"),
            self.max_number_of_units
        )
    }
}

/// A set of interventions and how they combine.
///
/// ```
/// use vene::{IntervenableConfig, Mode, hooks::Component};
/// let cfg = IntervenableConfig::from_components([
///     (0, Component::BlockOutput, "VanillaIntervention"),
///     (1, Component::MlpOutput, "ZeroIntervention"),
/// ]);
/// assert_eq!(cfg.representations.len(), 2);
/// assert_eq!(cfg.mode, Mode::Parallel);
/// let back = IntervenableConfig::from_json_str(&cfg.to_json_string()?)?;
/// assert_eq!(back.representations[1].type_name(), "ZeroIntervention");
/// // the short dict-like form, one representation or a list
/// let short = IntervenableConfig::from_json_str(r#"{"layer": 1, "component": "block_output"}"#)?;
/// assert_eq!(short.representations[0].layer, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IntervenableConfig {
    /// Version of the saved format (see [`FORMAT_VERSION`]).
    #[serde(default = "current_version")]
    pub format_version: u32,
    /// The interventions, in key order.
    pub representations: Vec<RepresentationConfig>,
    /// Parallel or serial.
    #[serde(default, skip_serializing_if = "is_default")]
    pub mode: Mode,
}

fn current_version() -> u32 {
    FORMAT_VERSION
}

impl Default for IntervenableConfig {
    fn default() -> Self {
        Self::new(vec![])
    }
}

impl IntervenableConfig {
    /// A parallel config over `representations`.
    pub fn new(representations: Vec<RepresentationConfig>) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            representations,
            mode: Mode::Parallel,
        }
    }

    /// One representation per `(layer, component, intervention type)`.
    pub fn from_components<'a>(
        items: impl IntoIterator<Item = (usize, Component, &'a str)>,
    ) -> Self {
        Self::new(
            items
                .into_iter()
                .map(|(l, c, t)| RepresentationConfig::new(l, c).intervention_type(t))
                .collect(),
        )
    }

    /// Sets the mode.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Parses a config: the full form (`{"representations": [...], "mode": ...}`), a list of
    /// representations, or one representation (pyvene's dict shorthand). A `format_version`
    /// newer than [`FORMAT_VERSION`] is an error.
    pub fn from_json_str(json: &str) -> Result<Self> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|source| VeneError::Json {
                what: "intervenable config".into(),
                source,
            })?;
        Self::from_json_value(value, "intervenable config")
    }

    /// As [`Self::from_json_str`], from a parsed value; `what` names the source in errors.
    pub fn from_json_value(value: serde_json::Value, what: &str) -> Result<Self> {
        let json_err = |source| VeneError::Json {
            what: what.to_string(),
            source,
        };
        let cfg = match value {
            serde_json::Value::Array(_) => {
                Self::new(serde_json::from_value(value).map_err(json_err)?)
            }
            serde_json::Value::Object(ref map) if map.contains_key("representations") => {
                if let Some(found) = map.get("format_version").and_then(|v| v.as_u64()) {
                    if found > u64::from(FORMAT_VERSION) {
                        return Err(VeneError::NewerFormat {
                            path: what.to_string(),
                            found: u32::try_from(found).unwrap_or(u32::MAX),
                            supported: FORMAT_VERSION,
                        });
                    }
                }
                serde_json::from_value(value).map_err(json_err)?
            }
            serde_json::Value::Object(_) => {
                Self::new(vec![serde_json::from_value(value).map_err(json_err)?])
            }
            other => {
                return Err(VeneError::Config(format!(
                    "{what}: expected an object or a list, got {other}"
                )))
            }
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every representation ([`RepresentationConfig::validate`]).
    pub fn validate(&self) -> Result<()> {
        self.representations
            .iter()
            .enumerate()
            .try_for_each(|(i, r)| r.validate(i))
    }

    /// The config as pretty JSON. An intervention object is written as its type name and
    /// hyperparameters, so that reading the JSON back builds the same kind of intervention
    /// (with fresh parameters: [`crate::IntervenableModel::save`] saves learned parameters,
    /// constant sources and autoencoder weights, which JSON does not carry).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use vene::hooks::Component;
    /// use vene::interventions::{InterchangeDim, VanillaIntervention};
    /// use vene::{IntervenableConfig, RepresentationConfig};
    ///
    /// let vanilla = VanillaIntervention::new(16).with_interchange_dim(4);
    /// let cfg = IntervenableConfig::new(vec![
    ///     RepresentationConfig::new(1, Component::MlpOutput).intervention(Arc::new(vanilla)),
    /// ]);
    /// let back = IntervenableConfig::from_json_str(&cfg.to_json_string()?)?;
    /// assert_eq!(back.representations[0].type_name(), "VanillaIntervention");
    /// let dim = &back.representations[0].hyperparams["interchange_dim"];
    /// assert_eq!(serde_json::from_value::<InterchangeDim>(dim.clone())?, InterchangeDim::First(4));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to_json_string(&self) -> Result<String> {
        let mut inlined = self.clone();
        for r in &mut inlined.representations {
            if let Some(iv) = r.intervention.take() {
                *r = r.clone().with_intervention(iv.as_ref());
            }
        }
        serde_json::to_string_pretty(&inlined).map_err(|source| VeneError::Json {
            what: "intervenable config".into(),
            source,
        })
    }
}
