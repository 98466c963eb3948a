//! The intervened forward pass: source runs, then the base run.

use std::collections::HashMap;

use candle_core::Tensor;
use vene_hooks::{Hooks, NoHooks};
use vene_interventions::Selection;
use vene_models::{LanguageModel, LogitsAt, Prefix};

use crate::config::Mode;
use crate::hooks_impl::{Getter, Phase, RunHooks, Setter};
use crate::locations::{Resolved, UnitLoc, UnitLocations};
use crate::shared_prefix::SharedPrefix;
use crate::source_prefix::{leading_positions, positions_needed_by};
use crate::{IntervenableModel, Result, Subspaces, VeneError};

/// Token ids `[B, T]`, an optional 0/1 attention mask `[B, T]` (padding) and optional
/// position ids `[B, T]`.
#[derive(Debug, Clone)]
pub struct Input {
    /// Token ids `[B, T]`.
    pub ids: Tensor,
    /// 1 for real tokens, 0 for padding.
    pub mask: Option<Tensor>,
    /// Explicit position ids (HF's `position_ids`). Without them, positions count the real
    /// tokens of each row (`cumsum(mask) - 1`), so a padded row gets the logits it gets alone.
    pub position_ids: Option<Tensor>,
}

impl Input {
    /// Ids without padding.
    pub fn new(ids: Tensor) -> Self {
        Self {
            ids,
            mask: None,
            position_ids: None,
        }
    }

    /// Ids with an attention mask.
    pub fn with_mask(ids: Tensor, mask: Tensor) -> Self {
        Self {
            ids,
            mask: Some(mask),
            position_ids: None,
        }
    }

    /// The same input with explicit position ids `[B, T]` (e.g. `arange(T)` on every row, as
    /// Hugging Face uses when no `position_ids` are passed).
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// let ids = Tensor::new(&[[0u32, 5, 6]], &Device::Cpu)?;
    /// let mask = Tensor::new(&[[0u32, 1, 1]], &Device::Cpu)?;
    /// let input = vene::Input::with_mask(ids, mask).positions(Tensor::new(&[[0u32, 1, 2]], &Device::Cpu)?);
    /// assert!(input.position_ids.is_some());
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn positions(mut self, position_ids: Tensor) -> Self {
        self.position_ids = Some(position_ids);
        self
    }

    fn batch(&self) -> Result<usize> {
        Ok(self
            .ids
            .dims2()
            .map_err(|_| {
                VeneError::Config(format!(
                    "input ids: expected shape [batch, seq], got {:?}",
                    self.ids.dims()
                ))
            })?
            .0)
    }
}

impl From<Tensor> for Input {
    fn from(ids: Tensor) -> Self {
        Input::new(ids)
    }
}

/// One intervened forward (pyvene's `forward(base, sources, unit_locations, subspaces, ...)`).
///
/// Sources: one per intervention group (by default one per intervention), or one for all;
/// [`ForwardRequest::no_source`] leaves a group without a source run (its interventions are
/// skipped unless they need no source or have a constant one), and
/// [`ForwardRequest::only_group`] runs one group of several alone.
#[derive(Debug, Clone)]
pub struct ForwardRequest {
    pub(crate) base: Input,
    pub(crate) sources: Vec<Option<Input>>,
    pub(crate) locations: Option<UnitLocations>,
    pub(crate) subspaces: Option<Subspaces>,
    pub(crate) source_representations: Option<Vec<Option<Tensor>>>,
    pub(crate) output_original: bool,
    pub(crate) logits: LogitsAt,
    pub(crate) gradients: bool,
    pub(crate) only_group: Option<usize>,
}

impl ForwardRequest {
    /// A request on `base` (ids, or an [`Input`] with a mask).
    pub fn new(base: impl Into<Input>) -> Self {
        Self {
            base: base.into(),
            sources: Vec::new(),
            locations: None,
            subspaces: None,
            source_representations: None,
            output_original: false,
            logits: LogitsAt::All,
            gradients: false,
            only_group: None,
        }
    }

    /// Adds a source input (the next group's).
    pub fn source(mut self, source: impl Into<Input>) -> Self {
        self.sources.push(Some(source.into()));
        self
    }

    /// The source of each of `n` groups: as given, one for all, or [`Self::only_group`]'s.
    pub(crate) fn group_sources(&self, n: usize) -> Result<Vec<Option<Input>>> {
        Ok(match (self.only_group, self.sources.len()) {
            (Some(g), _) if g >= n => {
                return Err(VeneError::Config(format!(
                    "only_group({g}): the config has {n} intervention group(s), numbered 0..{n}"
                )))
            }
            (Some(g), _) => {
                let mut all = vec![None; n];
                all[g] = self.sources.first().cloned().flatten();
                all
            }
            (None, 0) => vec![None; n],
            (None, 1) if n > 1 => vec![self.sources[0].clone(); n],
            (None, k) if k == n => self.sources.clone(),
            (None, k) => return Err(VeneError::SourceCount { got: k, groups: n }),
        })
    }

    /// Adds several sources.
    pub fn sources(mut self, sources: impl IntoIterator<Item = Input>) -> Self {
        self.sources.extend(sources.into_iter().map(Some));
        self
    }

    /// Leaves the next group without a source run.
    pub fn no_source(mut self) -> Self {
        self.sources.push(None);
        self
    }

    /// Runs intervention group `group` (0-based, in the config's group order) alone, with
    /// `source`: every other group gets no source run, as pyvene's
    /// `sources=[None, .., source, .., None]` does, so their interchanges are skipped (an
    /// intervention that needs no source, such as Zero or Collect, or one with a constant
    /// source, still runs). Replaces the sources given so far; unit locations and subspaces
    /// are still given for every group (or one for all). A `group` past the config's groups
    /// is an error at the forward.
    ///
    /// ```
    /// use candle_core::{DType, Device, Tensor};
    /// use vene::hooks::Component;
    /// use vene::models::{Gpt2Config, Model};
    /// use vene::{ForwardRequest, IntervenableConfig, IntervenableModel, RepresentationConfig};
    ///
    /// let (model, _) = Model::random_gpt2(&Gpt2Config::tiny(32, 8, 2, 2), DType::F32, &Device::Cpu)?;
    /// // Two groups: the block outputs of layers 0 and 1.
    /// let config = IntervenableConfig::new(vec![
    ///     RepresentationConfig::new(0, Component::BlockOutput),
    ///     RepresentationConfig::new(1, Component::BlockOutput),
    /// ]);
    /// let iv = IntervenableModel::new(config, model)?;
    /// let base = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
    /// let source = Tensor::new(&[[4u32, 5, 6]], &Device::Cpu)?;
    /// let second = iv.forward(&ForwardRequest::new(base.clone()).only_group(1, source.clone()))?;
    /// // The same as giving no source run to group 0.
    /// let by_hand =
    ///     iv.forward(&ForwardRequest::new(base.clone()).no_source().source(source.clone()))?;
    /// let diff = (second.intervened - by_hand.intervened)?.abs()?.max_all()?.to_scalar::<f32>()?;
    /// assert_eq!(diff, 0.0);
    /// assert!(iv.forward(&ForwardRequest::new(base).only_group(2, source)).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn only_group(mut self, group: usize, source: impl Into<Input>) -> Self {
        self.sources = vec![Some(source.into())];
        self.only_group = Some(group);
        self
    }

    /// Sets the unit locations (`None`: every position).
    pub fn locations(mut self, locations: UnitLocations) -> Self {
        self.locations = Some(locations);
        self
    }

    /// Sets the subspaces.
    pub fn subspaces(mut self, subspaces: Subspaces) -> Self {
        self.subspaces = Some(subspaces);
        self
    }

    /// One constant source `[d]` for every intervention (pyvene's `source_representations`).
    pub fn source_representation(mut self, source: Tensor) -> Self {
        self.source_representations = Some(vec![Some(source)]);
        self
    }

    /// A constant source per intervention, in key order (`None`: none for that one).
    pub fn source_representations(mut self, sources: Vec<Option<Tensor>>) -> Self {
        self.source_representations = Some(sources);
        self
    }

    /// Also returns the logits of the base without interventions.
    pub fn output_original(mut self, yes: bool) -> Self {
        self.output_original = yes;
        self
    }

    /// Computes the logits only at these positions ([`LogitsAt::All`] by default): e.g.
    /// [`LogitsAt::Last`] when only the next-token prediction is used, which skips the
    /// unembedding everywhere else. The intervened (and original) logits are then
    /// `[B, n, vocab]`, equal to those rows of the full logits.
    ///
    /// ```
    /// use candle_core::{Device, Tensor};
    /// use vene::{ForwardRequest, LogitsAt};
    /// let ids = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu)?;
    /// let req = ForwardRequest::new(ids).logits(LogitsAt::Last);
    /// # Ok::<(), candle_core::Error>(())
    /// ```
    pub fn logits(mut self, at: LogitsAt) -> Self {
        self.logits = at;
        self
    }

    /// Keeps the autograd graph through the interventions (for a loss on the outputs and a
    /// backward pass, as [`IntervenableModel::train_step`] does). Off by default: the
    /// outputs of interventions and the gathered source units are detached, so inference
    /// with trainable interventions or autoencoders runs the untracked fast path and keeps no
    /// graph in memory. A manual training loop must set this, or its gradients are empty.
    pub fn gradients(mut self, yes: bool) -> Self {
        self.gradients = yes;
        self
    }
}

/// What an intervened forward returns.
#[derive(Debug, Clone)]
pub struct ForwardOutput {
    /// Logits of the base without interventions, when asked for.
    pub original: Option<Tensor>,
    /// Logits of the intervened base `[B, T, vocab]` (`[B, n, vocab]` with
    /// [`ForwardRequest::logits`]).
    pub intervened: Tensor,
    /// Activations of collect interventions `[B, n, d]`, in key order.
    pub collected: Vec<Tensor>,
}

/// Which source a setter gets.
enum SetterSource {
    Gathered,
    Skipped,
    NoSourceRun,
}

impl<M: LanguageModel> IntervenableModel<M> {
    /// Runs the sources, then the base with every intervention (see [`ForwardRequest`]).
    ///
    /// ```no_run
    /// # fn demo(m: &vene::IntervenableModel<vene::models::Model>, base: candle_core::Tensor, src: candle_core::Tensor) -> vene::Result<()> {
    /// use vene::{ForwardRequest, UnitLocations};
    /// let out = m.forward(&ForwardRequest::new(base).source(src).locations(UnitLocations::pair(5, 3)))?;
    /// println!("{:?}", out.intervened.dims());
    /// # Ok(()) }
    /// ```
    pub fn forward(&self, req: &ForwardRequest) -> Result<ForwardOutput> {
        let shared = self.shared_prefix(req)?;
        let (hooks, _) = self.prepare_with(req, None, shared.as_ref())?;
        let mut hooks = hooks;
        let base = shared.as_ref().map(|s| &s.base);
        let intervened = self.logits_of(&req.base, base, &req.logits, &mut hooks)?;
        let original = if req.output_original {
            Some(self.logits_of(&req.base, base, &req.logits, &mut NoHooks)?)
        } else {
            None
        };
        Ok(ForwardOutput {
            original,
            intervened,
            collected: self.collected_in_order(hooks.collected),
        })
    }

    /// Logits of `input` (going on from its shared prefix when there is one).
    fn logits_of(
        &self,
        input: &Input,
        prefix: Option<&Prefix>,
        at: &LogitsAt,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let at = match at {
            LogitsAt::Nothing => &LogitsAt::All, // a forward returns logits
            other => other,
        };
        let logits = match prefix {
            Some(p) => self.model.forward_from_prefix(p, at, hooks)?,
            None => self.model.forward_logits_at(
                &input.ids,
                input.mask.as_ref(),
                input.position_ids.as_ref(),
                at,
                hooks,
            )?,
        };
        logits.ok_or_else(|| VeneError::Config("internal: the model returned no logits".into()))
    }

    pub(crate) fn collected_in_order(&self, mut collected: Vec<(usize, Tensor)>) -> Vec<Tensor> {
        // stable: several calls of one key keep their order
        collected.sort_by_key(|(slot, _)| *slot);
        collected.into_iter().map(|(_, t)| t).collect()
    }

    fn sources_per_group(&self, req: &ForwardRequest, batch: usize) -> Result<Vec<Option<Input>>> {
        let sources = req.group_sources(self.groups.len())?;
        for (i, s) in sources.iter().enumerate() {
            if let Some(s) = s {
                let b = s.batch()?;
                if b != batch {
                    return Err(VeneError::SourceBatch {
                        source_index: i,
                        got: b,
                        base: batch,
                    });
                }
            }
        }
        Ok(sources)
    }

    fn selection(&self, req: &ForwardRequest, slot: usize, batch: usize) -> Result<Selection> {
        match &req.subspaces {
            None => Ok(Selection::Default),
            Some(s) => {
                let partition = self
                    .config
                    .representations
                    .get(slot)
                    .and_then(|r| r.subspace_partition.as_deref());
                s.selection(slot, self.slots.len(), batch, partition)
            }
        }
    }

    fn constant_for(&self, req: &ForwardRequest, slot: usize) -> Result<Option<Tensor>> {
        let given = match &req.source_representations {
            None => None,
            Some(v) if v.len() == 1 => v[0].clone(),
            Some(v) if v.len() == self.slots.len() => v[slot].clone(),
            Some(v) => {
                return Err(VeneError::Config(format!(
                    "{} source representations given, the config has {} interventions",
                    v.len(),
                    self.slots.len()
                )))
            }
        };
        if let Some(t) = &given {
            let w = self.slots[slot].width;
            if t.dims() != [w] {
                return Err(VeneError::Config(format!(
                    "{}: source representation has shape {:?}, expected [{w}]",
                    self.slots[slot].key,
                    t.dims()
                )));
            }
        }
        Ok(given.or_else(|| self.slots[slot].constant_source.clone()))
    }

    fn setter(
        &self,
        req: &ForwardRequest,
        slot: usize,
        loc: Option<UnitLoc>,
        gathered: Option<Tensor>,
        batch: usize,
    ) -> Result<Setter> {
        let s = &self.slots[slot];
        let source = match gathered {
            Some(g) => Some(g),
            None => self.constant_for(req, slot)?,
        };
        Ok(Setter {
            slot,
            site: s.site.clone(),
            loc,
            selection: self.selection(req, slot, batch)?,
            args: match &req.subspaces {
                Some(s) => s.call_args(slot, self.slots.len())?,
                None => Default::default(),
            },
            intervention: s.intervention.clone(),
            source,
        })
    }

    fn skip_getter(&self, slot: usize, loc: &Option<UnitLoc>) -> Option<Getter> {
        self.slots[slot].skip_input.as_ref().map(|site| Getter {
            slot,
            site: site.clone(),
            loc: loc.clone(),
        })
    }

    /// Runs the source passes and returns the hooks of the base run.
    pub(crate) fn prepare(
        &self,
        req: &ForwardRequest,
        phase: Option<Phase>,
    ) -> Result<(RunHooks, Vec<Resolved>)> {
        self.prepare_with(req, phase, None)
    }

    /// The request's unit locations, per run (one entry in parallel mode, one per serial step);
    /// `None` everywhere (every position) when it gives none.
    pub(crate) fn resolve_locations(
        &self,
        req: &ForwardRequest,
        batch: usize,
    ) -> Result<Vec<Resolved>> {
        let group_sizes: Vec<usize> = self.groups.iter().map(Vec::len).collect();
        Ok(match &req.locations {
            Some(l) => l.resolve(self.config.mode, self.slots.len(), &group_sizes, batch)?,
            None => match self.config.mode {
                Mode::Parallel => vec![Resolved {
                    sources: vec![None; self.slots.len()],
                    base: vec![None; self.slots.len()],
                }],
                Mode::Serial => group_sizes
                    .iter()
                    .map(|&n| Resolved {
                        sources: vec![None; n],
                        base: vec![None; n],
                    })
                    .collect(),
            },
        })
    }

    /// As [`Self::prepare`]; the source run of `shared.group` goes on from its shared prefix.
    pub(crate) fn prepare_with(
        &self,
        req: &ForwardRequest,
        phase: Option<Phase>,
        shared: Option<&SharedPrefix>,
    ) -> Result<(RunHooks, Vec<Resolved>)> {
        let batch = req.base.batch()?;
        let sources = self.sources_per_group(req, batch)?;
        let resolved = self.resolve_locations(req, batch)?;
        let hooks = match self.config.mode {
            Mode::Parallel => self.prepare_parallel(req, &sources, &resolved[0], batch, shared)?,
            Mode::Serial => self.prepare_serial(req, &sources, &resolved, batch)?,
        };
        Ok((
            RunHooks {
                phase,
                detach: !req.gradients,
                ..hooks
            },
            resolved,
        ))
    }

    /// A source run: only as far as the last layer a getter reads (no logits), going on from
    /// `prefix` when the source shares one with the base.
    fn run_getters(
        &self,
        req: &ForwardRequest,
        source: &Input,
        prefix: Option<&Prefix>,
        getters: Vec<Getter>,
        setters: Vec<Setter>,
    ) -> Result<HashMap<usize, Tensor>> {
        if getters.is_empty() {
            return Ok(HashMap::new());
        }
        // A source that only gathers runs, on a causal model, only as far as the last
        // position it reads (`source_prefix`).
        let leading = match prefix {
            None if setters.is_empty() && self.model.is_causal() => {
                match positions_needed_by(&getters) {
                    Some(n) => leading_positions(source, n)?,
                    None => None,
                }
            }
            _ => None,
        };
        let source = leading.as_ref().unwrap_or(source);
        let mut hooks = RunHooks {
            setters,
            getters,
            detach: !req.gradients,
            ..RunHooks::default()
        };
        match prefix {
            Some(p) => self
                .model
                .forward_from_prefix(p, &LogitsAt::Nothing, &mut hooks)?,
            None => self.model.forward_logits_at(
                &source.ids,
                source.mask.as_ref(),
                source.position_ids.as_ref(),
                &LogitsAt::Nothing,
                &mut hooks,
            )?,
        };
        Ok(hooks.gathered)
    }

    fn prepare_parallel(
        &self,
        req: &ForwardRequest,
        sources: &[Option<Input>],
        loc: &Resolved,
        batch: usize,
        shared: Option<&SharedPrefix>,
    ) -> Result<RunHooks> {
        let mut kinds: Vec<SetterSource> = (0..self.slots.len())
            .map(|_| SetterSource::NoSourceRun)
            .collect();
        let mut gathered: HashMap<usize, Tensor> = HashMap::new();
        for (g, members) in self.groups.iter().enumerate() {
            match sources.get(g).cloned().flatten() {
                Some(src) => {
                    let getters: Vec<Getter> = members
                        .iter()
                        .filter(|&&i| self.slots[i].reads_source())
                        .map(|&i| Getter {
                            slot: i,
                            site: self.slots[i].site.clone(),
                            loc: loc.sources[i].clone(),
                        })
                        .collect();
                    for &i in members {
                        kinds[i] = SetterSource::Gathered;
                    }
                    if !getters.is_empty() {
                        let prefix = shared.filter(|s| s.group == g).map(|s| &s.source);
                        gathered.extend(self.run_getters(req, &src, prefix, getters, vec![])?);
                    }
                }
                None if !req.sources.is_empty() => {
                    for &i in members {
                        kinds[i] = SetterSource::Skipped;
                    }
                }
                None => {}
            }
        }
        let mut hooks = RunHooks::default();
        for (i, kind) in kinds.iter().enumerate() {
            if matches!(kind, SetterSource::Skipped)
                && self.slots[i].reads_source()
                && self.constant_for(req, i)?.is_none()
            {
                continue; // pyvene's "smart jump": no source run for this group
            }
            hooks.setters.push(self.setter(
                req,
                i,
                loc.base[i].clone(),
                gathered.remove(&i),
                batch,
            )?);
            hooks.getters.extend(self.skip_getter(i, &loc.base[i]));
        }
        Ok(hooks)
    }

    fn prepare_serial(
        &self,
        req: &ForwardRequest,
        sources: &[Option<Input>],
        steps: &[Resolved],
        batch: usize,
    ) -> Result<RunHooks> {
        let mut setters: Vec<Setter> = Vec::new();
        let mut getters_skip: Vec<Getter> = Vec::new();
        for (g, members) in self.groups.iter().enumerate() {
            let Some(src) = sources.get(g).cloned().flatten() else {
                continue;
            };
            let step = steps
                .get(g)
                .ok_or_else(|| VeneError::Locations(format!("no locations for serial step {g}")))?;
            let getters: Vec<Getter> = members
                .iter()
                .enumerate()
                .filter(|(_, &i)| self.slots[i].reads_source())
                .map(|(k, &i)| Getter {
                    slot: i,
                    site: self.slots[i].site.clone(),
                    loc: step.sources.get(k).cloned().flatten(),
                })
                .collect();
            // the previous group's setters act on this source run, before its getters read
            let prev = std::mem::take(&mut setters);
            let mut run_getters = getters;
            run_getters.append(&mut getters_skip);
            let mut gathered = self.run_getters(req, &src, None, run_getters, prev)?;
            for (k, &i) in members.iter().enumerate() {
                let base_loc = step.base.get(k).cloned().flatten();
                setters.push(self.setter(req, i, base_loc.clone(), gathered.remove(&i), batch)?);
                getters_skip.extend(self.skip_getter(i, &base_loc));
            }
        }
        Ok(RunHooks {
            setters,
            getters: getters_skip,
            ..RunHooks::default()
        })
    }
}
