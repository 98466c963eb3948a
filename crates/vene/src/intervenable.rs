//! [`IntervenableModel`]: a model with interventions at configured sites.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor, Var};
use vene_hooks::{Component, HookableModel, Site, Unit};
use vene_interventions::Intervention;
use vene_models::LanguageModel;

use crate::config::{IntervenableConfig, RepresentationConfig};
use crate::hooks_impl::SlotSite;
use crate::{Result, VeneError};

/// One configured intervention, resolved against the model.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// pyvene's key, e.g. `layer_1_comp_block_output_unit_pos_nunit_1#0`.
    pub key: String,
    /// Where it acts.
    pub site: SlotSite,
    /// For skip interventions: where the component's input is read.
    pub skip_input: Option<SlotSite>,
    /// The intervention (shared between linked slots).
    pub intervention: Arc<dyn Intervention>,
    /// A constant source `[d]` given in the config.
    pub constant_source: Option<Tensor>,
    /// The width `d` of one unit.
    pub width: usize,
}

impl Slot {
    /// Whether its intervention reads units from a source run (needs a source and is not a
    /// skip intervention, whose "source" is the component's own input).
    pub fn reads_source(&self) -> bool {
        self.intervention.needs_source() && !self.intervention.is_skip()
    }
}

/// A language model with interventions at the sites of an [`IntervenableConfig`]
/// (pyvene's `IntervenableModel`).
///
/// The model's weights are never trained; the interventions' parameters are
/// ([`Self::trainable_vars`]). `forward` takes `&self`, and the type is `Send + Sync`: forwards
/// from several threads at once give the results they give one by one.
#[derive(Debug)]
pub struct IntervenableModel<M: LanguageModel> {
    pub(crate) model: M,
    pub(crate) config: IntervenableConfig,
    pub(crate) slots: Vec<Slot>,
    /// Intervention indices per group, groups in ascending group-key order.
    pub(crate) groups: Vec<Vec<usize>>,
    /// Set by [`Self::disable_intervention_gradients`]: no intervention parameter is trained.
    pub(crate) interventions_frozen: bool,
}

/// The site a skip intervention reads its input from.
fn skip_input_of(component: Component) -> Option<Component> {
    match component {
        Component::BlockOutput => Some(Component::BlockInput),
        Component::MlpOutput => Some(Component::MlpInput),
        Component::AttentionOutput => Some(Component::AttentionInput),
        _ => None,
    }
}

/// Resolves where `repr` acts in `model` and the width of one unit.
pub(crate) fn resolve_site<M: HookableModel + ?Sized>(
    model: &M,
    repr: &RepresentationConfig,
) -> Result<(SlotSite, usize)> {
    let c = repr.component;
    model.check_site(Site::new(repr.layer, c))?;
    let shape = model.component_shape(c)?;
    if c == Component::AttentionWeight {
        // units: rows of probabilities over the keys, padded to max_position_embeddings
        return Ok((
            SlotSite {
                tap: Site::new(repr.layer, c),
                unit: repr.unit,
                n_heads: Some(shape.n_heads),
                attention_width: Some(shape.width),
            },
            shape.width,
        ));
    }
    let (n_heads, width) = if c.is_head() {
        if repr.unit == Unit::Pos {
            return Err(VeneError::Config(format!(
                "layer {} {c}: a head component takes unit h or h.pos, not pos",
                repr.layer
            )));
        }
        (Some(shape.n_heads), shape.head_dim())
    } else {
        if repr.unit != Unit::Pos {
            return Err(VeneError::Config(format!(
                "layer {} {c}: unit {} needs a head component (head_*); use unit pos",
                repr.layer, repr.unit
            )));
        }
        (None, shape.width)
    };
    Ok((
        SlotSite {
            tap: Site::new(repr.layer, c.tap()),
            unit: repr.unit,
            n_heads,
            attention_width: None,
        },
        width,
    ))
}

/// The width of the space an intervention's dims index: the latent width of an autoencoder,
/// the rank of a low-rank rotation, the number of components of a PCA, else the
/// representation's width.
fn selection_width(iv: &dyn Intervention) -> usize {
    let h = iv.hyperparams();
    h.get("latent_dim")
        .or_else(|| h.get("low_rank_dimension"))
        .or_else(|| h.get("n_components"))
        .and_then(serde_json::Value::as_u64)
        .and_then(|v| usize::try_from(v).ok())
        .unwrap_or_else(|| iv.embed_dim())
}

/// The hyperparameters passed to `build_intervention` for `repr`.
pub(crate) fn hyperparams_of(repr: &RepresentationConfig) -> serde_json::Value {
    let mut h = repr.hyperparams.clone();
    if let Some(k) = repr.low_rank_dimension {
        h.entry("low_rank_dimension").or_insert(k.into());
    }
    if let Some(l) = repr.latent_dim {
        h.entry("latent_dim").or_insert(l.into());
    }
    serde_json::Value::Object(h)
}

impl<M: LanguageModel> IntervenableModel<M> {
    /// Builds the interventions of `config` on `model`, at the model's device and dtype.
    ///
    /// Checks every site (layer, component, unit) against the model, the width of given
    /// intervention objects against their component, and the group keys (all set or none).
    pub fn new(config: IntervenableConfig, model: M) -> Result<Self> {
        Self::build(config, model, &HashMap::new(), None)
    }

    /// As [`Self::new`], with saved state per key (used by loading).
    pub(crate) fn build(
        config: IntervenableConfig,
        model: M,
        states: &HashMap<String, crate::save::SavedState>,
        keys: Option<Vec<String>>,
    ) -> Result<Self> {
        config.validate()?;
        if let Some(k) = &keys {
            if k.len() != config.representations.len() {
                return Err(VeneError::Config(format!(
                    "{} sorted keys for {} representations",
                    k.len(),
                    config.representations.len()
                )));
            }
        }
        let mut slots = Vec::with_capacity(config.representations.len());
        let mut collisions: HashMap<String, usize> = HashMap::new();
        let mut linked: HashMap<i64, Arc<dyn Intervention>> = HashMap::new();
        for (i, repr) in config.representations.iter().enumerate() {
            let (site, width) = resolve_site(&model, repr)?;
            let proposal = repr.key_proposal();
            let n = collisions.entry(proposal.clone()).or_insert(0);
            let key = match keys.as_ref().and_then(|k| k.get(i)) {
                Some(k) => k.clone(),
                None => format!("{proposal}#{n}"),
            };
            *n += 1;
            let linked_iv = repr
                .intervention_link_key
                .and_then(|k| linked.get(&k).cloned());
            let intervention: Arc<dyn Intervention> = match (linked_iv, &repr.intervention) {
                (Some(iv), _) => iv,
                (None, Some(iv)) => iv.clone(),
                (None, None) => {
                    let saved = states.get(&key);
                    let state: HashMap<String, Tensor> = saved
                        .map(|s| s.tensors.iter().cloned().collect())
                        .unwrap_or_default();
                    let built = vene_interventions::build_intervention(
                        repr.type_name(),
                        width,
                        &hyperparams_of(repr),
                        &state,
                        model.device(),
                        model.dtype(),
                    );
                    match (built, saved) {
                        (Ok(iv), _) => Arc::from(iv),
                        (Err(e), Some(saved)) => {
                            return Err(VeneError::BadState {
                                path: saved.path.clone(),
                                key,
                                source: Box::new(e.into()),
                            })
                        }
                        (Err(e), None) => return Err(e.into()),
                    }
                }
            };
            if intervention.embed_dim() != width {
                if intervention.is_autoencoder() {
                    return Err(VeneError::AutoencoderWidth {
                        input_dim: intervention.embed_dim(),
                        width,
                        component: repr.component,
                        layer: repr.layer,
                    });
                }
                return Err(VeneError::Config(format!(
                    "{key}: {} has width {}, but {} at layer {} has width {width}",
                    intervention.type_name(),
                    intervention.embed_dim(),
                    repr.component,
                    repr.layer
                )));
            }
            repr.validate_partition_width(i, selection_width(intervention.as_ref()))?;
            if let Some(k) = repr.intervention_link_key {
                linked.entry(k).or_insert_with(|| intervention.clone());
            }
            let skip_input = if intervention.is_skip() {
                let input = skip_input_of(repr.component).ok_or_else(|| {
                    VeneError::Config(format!(
                        "{key}: SkipIntervention needs a component with an input site (block_output, mlp_output, attention_output), got {}",
                        repr.component
                    ))
                })?;
                let input_repr = RepresentationConfig::new(repr.layer, input);
                Some(resolve_site(&model, &input_repr)?.0)
            } else {
                None
            };
            let constant_source = match &repr.source_representation {
                Some(t) => {
                    if t.dims() != [width] {
                        return Err(VeneError::Config(format!(
                            "{key}: constant source has shape {:?}, expected [{width}]",
                            t.dims()
                        )));
                    }
                    Some(t.to_device(model.device())?.to_dtype(model.dtype())?)
                }
                None => None,
            };
            slots.push(Slot {
                key,
                site,
                skip_input,
                intervention,
                constant_source,
                width,
            });
        }
        let groups = group_slots(&config.representations)?;
        Ok(Self {
            model,
            config,
            slots,
            groups,
            interventions_frozen: false,
        })
    }

    /// The wrapped model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Gives the wrapped model back.
    pub fn into_model(self) -> M {
        self.model
    }

    /// The config.
    pub fn config(&self) -> &IntervenableConfig {
        &self.config
    }

    /// pyvene's keys of the interventions, in config order.
    pub fn keys(&self) -> Vec<&str> {
        self.slots.iter().map(|s| s.key.as_str()).collect()
    }

    /// The intervention with key `key`.
    pub fn intervention(&self, key: &str) -> Option<&Arc<dyn Intervention>> {
        self.slots
            .iter()
            .find(|s| s.key == key)
            .map(|s| &s.intervention)
    }

    /// The interventions, in config order.
    pub fn interventions(&self) -> Vec<&Arc<dyn Intervention>> {
        self.slots.iter().map(|s| &s.intervention).collect()
    }

    /// Number of intervention groups (the number of sources a forward takes).
    pub fn n_groups(&self) -> usize {
        self.groups.len()
    }

    fn unique_interventions(&self) -> Vec<&Arc<dyn Intervention>> {
        let mut out: Vec<&Arc<dyn Intervention>> = Vec::new();
        for s in &self.slots {
            if !out.iter().any(|o| Arc::ptr_eq(o, &s.intervention)) {
                out.push(&s.intervention);
            }
        }
        out
    }

    /// The trainable parameters of the interventions (linked interventions counted once);
    /// empty after [`Self::disable_intervention_gradients`].
    pub fn trainable_vars(&self) -> Vec<Var> {
        if self.interventions_frozen {
            return Vec::new();
        }
        self.unique_interventions()
            .into_iter()
            .flat_map(|iv| iv.vars())
            .collect()
    }

    /// The interventions' trainable parameters by pyvene's names, `<key>.<state-dict name>`
    /// (e.g. `layer_1_comp_block_output_unit_pos_nunit_1#0.autoencoder.encoder.0.weight`),
    /// linked interventions once under their first key (pyvene's `named_parameters`; the
    /// model's weights are frozen and not listed).
    pub fn named_parameters(&self) -> Result<Vec<(String, Var)>> {
        let mut seen: Vec<&Arc<dyn Intervention>> = Vec::new();
        let mut out = Vec::new();
        for s in &self.slots {
            if seen.iter().any(|o| Arc::ptr_eq(o, &s.intervention)) {
                continue;
            }
            seen.push(&s.intervention);
            for (name, var) in s.intervention.named_vars()? {
                out.push((format!("{}.{name}", s.key), var));
            }
        }
        Ok(out)
    }

    /// Number of trainable scalars in the interventions (pyvene's `count_parameters()`; the
    /// model's weights are frozen and never counted). Linked interventions count once; after
    /// [`Self::disable_intervention_gradients`] it is 0, as pyvene counts only parameters
    /// that require gradients.
    pub fn count_parameters(&self) -> usize {
        self.trainable_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// pyvene's `count_parameters(include_model=...)`: [`Self::count_parameters`], plus with
    /// `include_model` the model's parameters that are trained. vene never trains the
    /// model's weights (pyvene freezes them too, in its constructor, until
    /// `enable_model_gradients`), so both give the same number.
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use vene::{IntervenableConfig, IntervenableModel, RepresentationConfig};
    /// use vene::hooks::Component;
    /// use vene::models::{Gpt2Config, Model};
    ///
    /// let (model, _) = Model::random_gpt2(&Gpt2Config::tiny(32, 8, 1, 2), DType::F32, &Device::Cpu)?;
    /// let config = IntervenableConfig::new(vec![RepresentationConfig::new(0, Component::BlockOutput)
    ///     .intervention_type("LowRankRotatedSpaceIntervention").low_rank_dimension(3)]);
    /// let mut iv = IntervenableModel::new(config, model)?;
    /// assert_eq!(iv.count_parameters_with(false), 8 * 3); // the [8, 3] rotation
    /// assert_eq!(iv.count_parameters_with(true), 8 * 3);
    /// iv.disable_intervention_gradients();
    /// assert_eq!(iv.count_parameters_with(false), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn count_parameters_with(&self, include_model: bool) -> usize {
        // the model's weights are never trainable in vene: they add nothing
        let _ = include_model;
        self.count_parameters()
    }

    /// Freezes the interventions' parameters (pyvene's `disable_intervention_gradients`,
    /// whose body in pyvene is empty; vene does what its docstring says): afterwards
    /// [`Self::trainable_vars`] is empty, so training refuses to run, and
    /// [`Self::count_parameters`] is 0. The parameters themselves, the forward and
    /// [`Self::named_parameters`] are unchanged. [`Self::enable_intervention_gradients`]
    /// undoes it.
    pub fn disable_intervention_gradients(&mut self) {
        self.interventions_frozen = true;
    }

    /// Makes the interventions' parameters trainable again after
    /// [`Self::disable_intervention_gradients`] (they are by default).
    pub fn enable_intervention_gradients(&mut self) {
        self.interventions_frozen = false;
    }

    /// Sets the temperature of every intervention that has one (Boundless and sigmoid-mask
    /// DAS), as pyvene's `set_temperature`; returns how many were set. `temperature` must be
    /// finite and > 0, and some intervention must have a temperature; otherwise nothing
    /// changes and the error says why. Works through `&self`: anneal between training steps.
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use vene::{IntervenableConfig, IntervenableModel, RepresentationConfig};
    /// use vene::hooks::Component;
    /// use vene::models::{Gpt2Config, Model};
    ///
    /// let (model, _) = Model::random_gpt2(&Gpt2Config::tiny(32, 8, 1, 2), DType::F32, &Device::Cpu)?;
    /// let config = IntervenableConfig::new(vec![RepresentationConfig::new(0, Component::BlockOutput)
    ///     .intervention_type("BoundlessRotatedSpaceIntervention")]);
    /// let iv = IntervenableModel::new(config, model)?;
    /// assert_eq!(iv.temperatures()[0].1, 50.0); // pyvene's initial temperature
    /// assert_eq!(iv.set_temperature(0.5)?, 1);
    /// assert_eq!(iv.temperatures()[0].1, 0.5);
    /// assert!(iv.set_temperature(-1.0).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn set_temperature(&self, temperature: f64) -> Result<usize> {
        vene_interventions::Temperature::new(temperature)?;
        let with: Vec<_> = self
            .unique_interventions()
            .into_iter()
            .filter(|iv| iv.temperature().is_some())
            .collect();
        if with.is_empty() {
            return Err(VeneError::Config(
                "set_temperature: no intervention has a temperature (only Boundless and \
                 sigmoid-mask interventions do)"
                    .into(),
            ));
        }
        for iv in &with {
            iv.set_temperature(temperature)?;
        }
        Ok(with.len())
    }

    /// The temperature of each intervention that has one, by key (pyvene's
    /// `get_temperature`), in config order.
    pub fn temperatures(&self) -> Vec<(&str, f64)> {
        self.slots
            .iter()
            .filter_map(|s| Some((s.key.as_str(), s.intervention.temperature()?)))
            .collect()
    }

    /// Moves the model, every intervention, the autoencoders they hold and the constant
    /// sources to `device`, all in `dtype`: after it, every tensor reachable from `self` is
    /// on `device` in `dtype`. On error nothing has changed.
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use vene::{IntervenableConfig, IntervenableModel, RepresentationConfig};
    /// use vene::hooks::Component;
    /// use vene::models::{Gpt2Config, LanguageModel, Model};
    ///
    /// let (model, _) = Model::random_gpt2(&Gpt2Config::tiny(32, 8, 1, 2), DType::F32, &Device::Cpu)?;
    /// let config = IntervenableConfig::new(vec![RepresentationConfig::new(0, Component::BlockOutput)]);
    /// let mut iv = IntervenableModel::new(config, model)?;
    /// iv.to(&Device::Cpu, DType::BF16)?;
    /// assert_eq!(iv.model().dtype(), DType::BF16);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn to(&mut self, device: &Device, dtype: DType) -> Result<()> {
        self.to_mixed(device, dtype, dtype)
    }

    /// As [`Self::to`], with the autoencoders in `autoencoder_dtype` (mixed precision: a
    /// bf16 or f16 model with f32 SAEs, or the reverse). The autoencoder math runs in
    /// `autoencoder_dtype`; activations are cast to it and the results back to `dtype`.
    pub fn to_mixed(
        &mut self,
        device: &Device,
        dtype: DType,
        autoencoder_dtype: DType,
    ) -> Result<()> {
        let model = self.model.to(device, dtype)?;
        let slots = self.mapped_slots(
            |iv| iv.to_device_dtype(device, dtype, autoencoder_dtype),
            |t| t.to_device(device)?.to_dtype(dtype),
        )?;
        self.model = model;
        self.set_slots(slots);
        Ok(())
    }

    /// Moves the interventions (their autoencoders included) and constant sources to
    /// `device`; the model must be on it too for a forward ([`Self::to`] moves everything).
    pub fn interventions_to_device(&mut self, device: &Device) -> Result<()> {
        let slots = self.mapped_slots(|iv| iv.to_device(device), |t| t.to_device(device))?;
        self.set_slots(slots);
        Ok(())
    }

    /// Casts the interventions' parameters (their autoencoders included) and constant
    /// sources to `dtype`.
    pub fn interventions_to_dtype(&mut self, dtype: DType) -> Result<()> {
        let slots = self.mapped_slots(|iv| iv.to_dtype(dtype), |t| t.to_dtype(dtype))?;
        self.set_slots(slots);
        Ok(())
    }

    /// Installs moved slots, and points the config's given interventions and constant
    /// sources at the moved ones (slot `i` is representation `i`), so that no tensor stays
    /// behind.
    fn set_slots(&mut self, slots: Vec<Slot>) {
        for (repr, slot) in self.config.representations.iter_mut().zip(&slots) {
            if repr.intervention.is_some() {
                repr.intervention = Some(slot.intervention.clone());
            }
            if repr.source_representation.is_some() {
                repr.source_representation = slot.constant_source.clone();
            }
        }
        self.slots = slots;
    }

    /// The slots with every intervention mapped by `f` (linked ones once, still shared) and
    /// every constant source by `g`.
    fn mapped_slots(
        &self,
        f: impl Fn(&dyn Intervention) -> vene_interventions::Result<Box<dyn Intervention>>,
        g: impl Fn(&Tensor) -> candle_core::Result<Tensor>,
    ) -> Result<Vec<Slot>> {
        let mut done: Vec<(Arc<dyn Intervention>, Arc<dyn Intervention>)> = Vec::new();
        let mut slots = self.slots.clone();
        for s in &mut slots {
            let new = match done
                .iter()
                .find(|(old, _)| Arc::ptr_eq(old, &s.intervention))
            {
                Some((_, new)) => new.clone(),
                None => {
                    let new: Arc<dyn Intervention> = Arc::from(f(s.intervention.as_ref())?);
                    done.push((s.intervention.clone(), new.clone()));
                    new
                }
            };
            s.intervention = new;
            if let Some(c) = &s.constant_source {
                s.constant_source = Some(g(c)?);
            }
        }
        Ok(slots)
    }
}

/// Groups by group key (all set or none; ascending in config order), else one per intervention.
fn group_slots(reprs: &[RepresentationConfig]) -> Result<Vec<Vec<usize>>> {
    let keys: Vec<Option<i64>> = reprs.iter().map(|r| r.group_key).collect();
    if keys.iter().all(Option::is_none) {
        return Ok((0..reprs.len()).map(|i| vec![i]).collect());
    }
    let mut groups: Vec<(i64, Vec<usize>)> = Vec::new();
    let mut last = i64::MIN;
    for (i, k) in keys.iter().enumerate() {
        let k = k.ok_or_else(|| {
            VeneError::Config(format!(
                "representation {i} has no group_key; when one has a group key, all must"
            ))
        })?;
        if k < last {
            return Err(VeneError::Config(format!(
                "group keys must be in ascending order; representation {i} has {k} after {last}"
            )));
        }
        last = k;
        match groups.last_mut() {
            Some((gk, members)) if *gk == k => members.push(i),
            _ => groups.push((k, vec![i])),
        }
    }
    Ok(groups.into_iter().map(|(_, m)| m).collect())
}
