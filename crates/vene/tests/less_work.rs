//! Doing less work changes no number: logits at chosen positions, source runs that stop after
//! the last layer an intervention reads, and inference that keeps no autograd graph.

mod common;

use std::cell::Cell;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Tensor};
use common::*;
use vene::hooks::{
    Component, ComponentShape, HookCall, HookableModel, Hooks, Result as HookResult, Site,
};
use vene::models::{KvCache, LanguageModel, Model, Prefix};
use vene::{ForwardRequest, Input, IntervenableConfig, IntervenableModel, LogitsAt, UnitLocations};

/// Hooks that pass everything to `inner` and note the deepest layer the model asked about.
struct Spy<'a> {
    inner: &'a mut dyn Hooks,
    deepest: Cell<Option<usize>>,
    /// Whether the inner hooks' `last_layer` is passed on.
    honest: bool,
}

impl Hooks for Spy<'_> {
    fn is_active(&self, site: Site) -> bool {
        let d = self.deepest.get().map_or(site.layer, |d| d.max(site.layer));
        self.deepest.set(Some(d));
        self.inner.is_active(site)
    }
    fn on_activation(&mut self, call: HookCall, x: Tensor) -> HookResult<Tensor> {
        self.inner.on_activation(call, x)
    }
    fn last_layer(&self) -> Option<usize> {
        if self.honest {
            self.inner.last_layer()
        } else {
            None
        }
    }
}

/// Per run: the logits asked for and the deepest layer run.
type Runs = Arc<Mutex<Vec<(LogitsAt, Option<usize>)>>>;

/// A model that records, per run, the logits asked for and the deepest layer it ran;
/// `honest: false` hides the hooks' `last_layer` (every run goes through every layer).
#[derive(Debug)]
struct Recording {
    model: Model,
    honest: bool,
    /// Whether the base and the source may share their first layers.
    share: bool,
    runs: Runs,
    /// The layers each shared prefix ran.
    prefixes: Arc<Mutex<Vec<usize>>>,
    /// Whether to declare the model causal (so that source runs may stop at the last
    /// position they read).
    causal: bool,
    /// The length of the input of each run.
    lengths: Arc<Mutex<Vec<usize>>>,
}

impl HookableModel for Recording {
    fn n_layers(&self) -> usize {
        self.model.n_layers()
    }
    fn model_type(&self) -> &str {
        self.model.model_type()
    }
    fn component_shape(&self, c: Component) -> HookResult<ComponentShape> {
        self.model.component_shape(c)
    }
}

impl LanguageModel for Recording {
    fn forward(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        hooks: &mut dyn Hooks,
    ) -> vene::models::Result<Tensor> {
        self.model.forward(ids, mask, hooks)
    }
    fn forward_logits_at(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        positions: Option<&Tensor>,
        logits: &LogitsAt,
        hooks: &mut dyn Hooks,
    ) -> vene::models::Result<Option<Tensor>> {
        self.lengths.lock().unwrap().push(ids.dim(1)?);
        let mut spy = self.spy(hooks);
        let out = self
            .model
            .forward_logits_at(ids, mask, positions, logits, &mut spy)?;
        self.record(logits, &spy);
        Ok(out)
    }
    fn forward_prefixes(
        &self,
        inputs: Vec<Prefix>,
        n_layers: usize,
    ) -> vene::models::Result<Vec<Prefix>> {
        if !self.share {
            return Ok(inputs);
        }
        self.prefixes.lock().unwrap().push(n_layers);
        self.model.forward_prefixes(inputs, n_layers)
    }
    fn forward_from_prefix(
        &self,
        prefix: &Prefix,
        logits: &LogitsAt,
        hooks: &mut dyn Hooks,
    ) -> vene::models::Result<Option<Tensor>> {
        self.lengths.lock().unwrap().push(prefix.ids().dim(1)?);
        let mut spy = self.spy(hooks);
        let out = self.model.forward_from_prefix(prefix, logits, &mut spy)?;
        self.record(logits, &spy);
        Ok(out)
    }
    fn forward_cached(
        &self,
        ids: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        hooks: &mut dyn Hooks,
    ) -> vene::models::Result<Tensor> {
        self.model.forward_cached(ids, mask, cache, hooks)
    }
    fn new_cache(&self) -> KvCache {
        self.model.new_cache()
    }
    fn device(&self) -> &Device {
        self.model.device()
    }
    fn dtype(&self) -> DType {
        self.model.dtype()
    }
    fn vocab_size(&self) -> usize {
        self.model.vocab_size()
    }
    fn hidden_size(&self) -> usize {
        self.model.hidden_size()
    }
    fn is_causal(&self) -> bool {
        self.causal
    }
    fn to(&self, device: &Device, dtype: DType) -> vene::models::Result<Self> {
        Ok(Recording {
            model: self.model.to(device, dtype)?,
            runs: self.runs.clone(),
            prefixes: self.prefixes.clone(),
            lengths: self.lengths.clone(),
            ..*self
        })
    }
}

impl Recording {
    fn spy<'a>(&self, hooks: &'a mut dyn Hooks) -> Spy<'a> {
        Spy {
            inner: hooks,
            deepest: Cell::new(None),
            honest: self.honest,
        }
    }
    fn record(&self, logits: &LogitsAt, spy: &Spy<'_>) {
        self.runs
            .lock()
            .unwrap()
            .push((logits.clone(), spy.deepest.get()));
    }
}

fn recording(
    name: &str,
    honest: bool,
    layer: usize,
    component: Component,
) -> (IntervenableModel<Recording>, Runs) {
    let runs: Runs = Arc::default();
    let model = Recording {
        model: model(name),
        honest,
        share: false,
        runs: runs.clone(),
        prefixes: Arc::default(),
        causal: false,
        lengths: Arc::default(),
    };
    let cfg = IntervenableConfig::from_components([(layer, component, "VanillaIntervention")]);
    (IntervenableModel::new(cfg, model).unwrap(), runs)
}

fn base_and_source(name: &str) -> (Tensor, Tensor) {
    let o = oracle(name);
    (
        get(&o, &format!("{name}.base_input_ids")),
        get(&o, &format!("{name}.source_input_ids")),
    )
}

#[test]
fn source_runs_stop_after_the_last_layer_read_and_change_nothing() {
    for name in ["gpt2", "llama"] {
        let (base, src) = base_and_source(name);
        let req = ForwardRequest::new(base)
            .source(src)
            .locations(UnitLocations::pair(2, 1));
        for (layer, component) in [(0, Component::BlockOutput), (0, Component::MlpOutput)] {
            let (early, runs) = recording(name, true, layer, component);
            let (full, full_runs) = recording(name, false, layer, component);
            let a = early.forward(&req).unwrap().intervened;
            let b = full.forward(&req).unwrap().intervened;
            assert_eq!(max_abs_diff(&a, &b), 0.0, "{name} {component}");
            let n = early.model().n_layers();
            assert!(n > layer + 1, "the fixture must have layers to skip");
            // the source run stops at the intervened layer; the base runs every layer
            assert_eq!(
                *runs.lock().unwrap(),
                vec![
                    (LogitsAt::Nothing, Some(layer)),
                    (LogitsAt::All, Some(n - 1))
                ],
                "{name} {component}"
            );
            assert_eq!(
                full_runs.lock().unwrap()[0],
                (LogitsAt::Nothing, Some(n - 1))
            );
        }
    }
}

#[test]
fn logits_at_chosen_positions_are_those_rows_of_the_full_logits() {
    let (base, src) = base_and_source("gpt2");
    let (b, t) = base.dims2().unwrap();
    assert_eq!(b, 2);
    // left padding on row 0 (its first two tokens), right padding on row 1 (its last one)
    let mask_of = |x: &Tensor| {
        let t = x.dim(1).unwrap();
        let mut m = vec![1u32; 2 * t];
        m[0] = 0;
        m[1] = 0;
        m[2 * t - 1] = 0;
        Tensor::from_vec(m, (2, t), &Device::Cpu).unwrap()
    };
    let (im, _) = recording("gpt2", true, 0, Component::BlockOutput);
    let req = |at: LogitsAt| {
        ForwardRequest::new(Input::with_mask(base.clone(), mask_of(&base)))
            .source(Input::with_mask(src.clone(), mask_of(&src)))
            .locations(UnitLocations::pair(3, 2))
            .output_original(true)
            .logits(at)
    };
    let all = im.forward(&req(LogitsAt::All)).unwrap();
    let last = im.forward(&req(LogitsAt::Last)).unwrap();
    let at = im.forward(&req(LogitsAt::Positions(vec![4, 2]))).unwrap();
    let row = |x: &Tensor, i: usize, p: usize| x.get(i).unwrap().get(p).unwrap();
    let last_real = [t - 1, t - 2];
    for (i, &p) in last_real.iter().enumerate() {
        for (full, part) in [
            (&all.intervened, &last.intervened),
            (
                all.original.as_ref().unwrap(),
                last.original.as_ref().unwrap(),
            ),
        ] {
            assert_eq!(part.dims(), &[b, 1, full.dim(2).unwrap()]);
            assert!(max_abs_diff(&row(full, i, p), &row(part, i, 0)) <= 1e-5);
        }
        assert!(max_abs_diff(&row(&all.intervened, i, 4), &row(&at.intervened, i, 0)) <= 1e-5);
        assert!(max_abs_diff(&row(&all.intervened, i, 2), &row(&at.intervened, i, 1)) <= 1e-5);
    }
    // the intervention is visible at the last real token, so the comparison is not vacuous
    assert!(max_abs_diff(&last.intervened, last.original.as_ref().unwrap()) > 1e-4);
    // a position past the input is an error naming it
    let err = im
        .forward(&req(LogitsAt::Positions(vec![t])))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("position {t}")), "{err}");
}

#[test]
fn inference_keeps_no_graph_unless_gradients_are_asked_for() {
    let im = gpt2_ae_idx_model();
    assert!(!im.trainable_vars().is_empty());
    let (base, src) = base_and_source("gpt2");
    let req = ForwardRequest::new(base)
        .source(src)
        .locations(UnitLocations::pair(2, 1));
    let inference = im.forward(&req).unwrap().intervened;
    assert!(!inference.track_op(), "an inference forward is tracked");
    let training = im.forward(&req.clone().gradients(true)).unwrap().intervened;
    assert!(training.track_op(), "gradients were asked for but not kept");
    // the untracked path fuses norms and softmax: equal up to rounding
    assert!(max_abs_diff(&inference, &training) <= 1e-5);
}

#[test]
fn a_shared_prefix_changes_nothing() {
    for name in ["gpt2", "llama"] {
        let (base, _) = base_and_source(name);
        // a source of the base's length: the base's rows in the other order
        let src = Tensor::cat(&[base.get(1).unwrap(), base.get(0).unwrap()], 0)
            .unwrap()
            .reshape(base.dims())
            .unwrap();
        let req = ForwardRequest::new(base.clone())
            .source(src)
            .locations(UnitLocations::pair(2, 3))
            .output_original(true);
        let (alone, _) = recording(name, true, 1, Component::MlpOutput);
        let runs: Runs = Arc::default();
        let prefixes: Arc<Mutex<Vec<usize>>> = Arc::default();
        let shared = IntervenableModel::new(
            IntervenableConfig::from_components([(1, Component::MlpOutput, "VanillaIntervention")]),
            Recording {
                model: model(name),
                honest: true,
                share: true,
                runs: runs.clone(),
                prefixes: prefixes.clone(),
                causal: false,
                lengths: Arc::default(),
            },
        )
        .unwrap();
        let a = alone.forward(&req).unwrap();
        let s = shared.forward(&req).unwrap();
        assert!(max_abs_diff(&a.intervened, &s.intervened) <= 1e-5, "{name}");
        assert!(
            max_abs_diff(a.original.as_ref().unwrap(), s.original.as_ref().unwrap()) <= 1e-5,
            "{name}"
        );
        assert!(max_abs_diff(&s.intervened, s.original.as_ref().unwrap()) > 1e-4);
        // layer 0 ran once for both; the source went on to layer 1 only, the base to the end
        assert_eq!(*prefixes.lock().unwrap(), vec![1], "{name}");
        let n = shared.model().n_layers();
        assert_eq!(
            *runs.lock().unwrap(),
            vec![
                (LogitsAt::Nothing, Some(1)),
                (LogitsAt::All, Some(n - 1)),
                (LogitsAt::All, Some(n - 1))
            ],
            "{name}"
        );
    }
}

/// A model declared causal (`causal`) or not, sharing first layers (`share`) or not, with the
/// length of the input of each run recorded.
fn length_recording(
    name: &str,
    causal: bool,
    share: bool,
    component: Component,
) -> (IntervenableModel<Recording>, Arc<Mutex<Vec<usize>>>) {
    let lengths: Arc<Mutex<Vec<usize>>> = Arc::default();
    let model = Recording {
        model: model(name),
        honest: true,
        share,
        runs: Arc::default(),
        prefixes: Arc::default(),
        causal,
        lengths: lengths.clone(),
    };
    let cfg = IntervenableConfig::from_components([(1, component, "VanillaIntervention")]);
    (IntervenableModel::new(cfg, model).unwrap(), lengths)
}

#[test]
fn causal_source_runs_stop_at_the_last_position_read_and_change_nothing() {
    for name in ["gpt2", "llama"] {
        let (base, src) = base_and_source(name);
        let (b, t) = src.dims2().unwrap();
        let t_base = base.dim(1).unwrap();
        // left padding on row 0 (its first token), right padding on row 1 (its last one)
        let mut mask = vec![1u32; b * t];
        mask[0] = 0;
        mask[2 * t - 1] = 0;
        let mask = Tensor::from_vec(mask, (b, t), &Device::Cpu).unwrap();
        let plain = Input::new(src.clone());
        let padded = Input::with_mask(src.clone(), mask);
        for (source, label) in [(plain, "no padding"), (padded, "padded")] {
            for component in [Component::BlockOutput, Component::AttentionOutput] {
                // source position 2 into base position 1: the source needs 3 positions
                let req = ForwardRequest::new(base.clone())
                    .source(source.clone())
                    .locations(UnitLocations::pair(2, 1))
                    .output_original(true);
                let (whole, whole_lengths) = length_recording(name, false, false, component);
                // sharing allowed: the shorter source run is chosen over sharing
                let (cut, cut_lengths) = length_recording(name, true, true, component);
                let a = whole.forward(&req).unwrap();
                let c = cut.forward(&req).unwrap();
                let what = format!("{name} {label} {component}");
                assert!(max_abs_diff(&a.intervened, &c.intervened) <= 1e-5, "{what}");
                assert!(
                    max_abs_diff(&c.intervened, c.original.as_ref().unwrap()) > 1e-4,
                    "{what}: the intervention must change the logits"
                );
                // the causal model's source ran on 3 positions and the base (intervened, then
                // original) on all; the other model's source ran whole
                assert_eq!(
                    *cut_lengths.lock().unwrap(),
                    vec![3, t_base, t_base],
                    "{what}"
                );
                assert_eq!(
                    *whole_lengths.lock().unwrap(),
                    vec![t, t_base, t_base],
                    "{what}"
                );
            }
        }
        // reading every position of the source needs the whole source (of the base's length)
        let req = ForwardRequest::new(base.clone()).source(src.narrow(1, 0, t_base).unwrap());
        let (cut, cut_lengths) = length_recording(name, true, false, Component::BlockOutput);
        cut.forward(&req).unwrap();
        assert_eq!(*cut_lengths.lock().unwrap(), vec![t_base, t_base], "{name}");
    }
}
