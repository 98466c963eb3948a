//! `forward_logits_at` on every family: logits at chosen positions are those rows of the full
//! logits (final soft-capping included), and a run for its hooks only stops after the last
//! layer they need.

use std::cell::Cell;

use candle_core::{DType, Device, Tensor};
use vene_hooks::{Component, HookCall, HookableModel, Hooks, NoHooks, Site};
use vene_models::{LanguageModel, LogitsAt, Model};
use vene_testutil::{family_oracle, max_abs_diff, FAMILY_FIXTURES, FAMILY_NAMES};

fn load(family: &str) -> Model {
    Model::from_dir(
        format!("{FAMILY_FIXTURES}/tiny-{family}"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("{family}: {e}"))
}

/// The fixture's source rows `[B, T]` and a mask with row 0 left-padded by 2 tokens and
/// the last row right-padded by 1.
fn inputs(family: &str) -> (Tensor, Tensor) {
    let o = family_oracle(family);
    let ids = o[&format!("{family}.source_input_ids")]
        .to_dtype(DType::U32)
        .unwrap();
    let (b, t) = ids.dims2().unwrap();
    let mut m = vec![1u32; b * t];
    m[0] = 0;
    m[1] = 0;
    m[b * t - 1] = 0;
    (ids, Tensor::from_vec(m, (b, t), &Device::Cpu).unwrap())
}

fn row(x: &Tensor, i: usize, p: usize) -> Tensor {
    x.get(i).unwrap().get(p).unwrap()
}

#[test]
fn logits_at_positions_are_rows_of_the_full_logits() {
    for f in FAMILY_NAMES {
        let model = load(f);
        let (ids, mask) = inputs(f);
        let (b, t) = ids.dims2().unwrap();
        let full = model.forward(&ids, Some(&mask), &mut NoHooks).unwrap();
        let at = |a: LogitsAt| {
            model
                .forward_logits_at(&ids, Some(&mask), None, &a, &mut NoHooks)
                .unwrap()
                .unwrap()
        };
        let last = at(LogitsAt::Last);
        assert_eq!(last.dims(), &[b, 1, model.vocab_size()], "{f}");
        for i in 0..b {
            let p = if i == b - 1 { t - 2 } else { t - 1 };
            let d = max_abs_diff(&row(&full, i, p), &row(&last, i, 0));
            assert!(d <= 1e-5, "{f}: row {i} differs by {d}");
        }
        let some = at(LogitsAt::Positions(vec![t - 1, 2, 2]));
        assert_eq!(some.dims(), &[b, 3, model.vocab_size()], "{f}");
        for i in 0..b {
            for (k, p) in [t - 1, 2, 2].into_iter().enumerate() {
                assert!(max_abs_diff(&row(&full, i, p), &row(&some, i, k)) <= 1e-5);
            }
        }
        let all = at(LogitsAt::All);
        assert!(max_abs_diff(&full, &all) <= 1e-6, "{f}");
    }
}

#[test]
fn bad_logit_positions_are_errors() {
    let family = FAMILY_NAMES[0];
    let model = load(family);
    let (ids, _) = inputs(family);
    let t = ids.dim(1).unwrap();
    for (at, needle) in [
        (LogitsAt::Positions(vec![0, t]), format!("position {t}")),
        (LogitsAt::Positions(vec![]), "empty".to_string()),
    ] {
        let err = model
            .forward_logits_at(&ids, None, None, &at, &mut NoHooks)
            .unwrap_err()
            .to_string();
        assert!(err.contains(&needle), "{err}");
    }
    let short_mask = Tensor::ones((ids.dim(0).unwrap(), t - 1), DType::U32, &Device::Cpu).unwrap();
    assert!(model
        .forward_logits_at(&ids, Some(&short_mask), None, &LogitsAt::Last, &mut NoHooks)
        .is_err());
}

/// Reads one site and says which layer is the last it needs; records every layer asked about.
struct ReadOne {
    site: Site,
    seen: Option<Tensor>,
    deepest: Cell<usize>,
}

impl Hooks for ReadOne {
    fn is_active(&self, site: Site) -> bool {
        self.deepest.set(self.deepest.get().max(site.layer));
        site == self.site
    }
    fn on_activation(&mut self, _call: HookCall, x: Tensor) -> vene_hooks::Result<Tensor> {
        self.seen = Some(x.clone());
        Ok(x)
    }
    fn last_layer(&self) -> Option<usize> {
        Some(self.site.layer)
    }
}

#[test]
fn a_run_for_hooks_only_stops_after_the_last_layer_they_need() {
    for f in FAMILY_NAMES {
        let model = load(f);
        let (ids, mask) = inputs(f);
        let site = Site::new(0, Component::MlpOutput);
        let mut early = ReadOne {
            site,
            seen: None,
            deepest: Cell::new(0),
        };
        let out = model
            .forward_logits_at(&ids, Some(&mask), None, &LogitsAt::Nothing, &mut early)
            .unwrap();
        assert!(out.is_none(), "{f}: logits were not asked for");
        assert_eq!(early.deepest.get(), 0, "{f}: ran past layer 0");
        assert!(
            model.n_layers() > 1,
            "{f}: the fixture must have layers to skip"
        );
        // the same activation as a full forward sees
        let mut full = ReadOne {
            site,
            seen: None,
            deepest: Cell::new(0),
        };
        model.forward(&ids, Some(&mask), &mut full).unwrap();
        assert_eq!(full.deepest.get(), model.n_layers() - 1);
        let d = max_abs_diff(&early.seen.unwrap(), &full.seen.unwrap());
        assert_eq!(d, 0.0, "{f}");
    }
}
