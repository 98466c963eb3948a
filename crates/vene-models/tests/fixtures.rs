//! GPT-2 and Llama against pyvene's fixtures: logits, and what the hook sees at every
//! component of layer 1.

mod common;

use candle_core::{DType, Device};
use common::Collect;
use vene_hooks::{Component, NoHooks, Site};
use vene_models::{LanguageModel, Model};
use vene_testutil::{fixture, load_tensors, max_abs_diff, oracle};

fn load(name: &str) -> Model {
    Model::from_dir(fixture(&format!("tiny-{name}")), DType::F32, &Device::Cpu).unwrap()
}

fn check_logits(name: &str) {
    let model = load(name);
    let o = oracle(name);
    for which in ["base", "source"] {
        let ids = &o[&format!("{name}.{which}_input_ids")];
        assert_eq!(ids.dtype(), DType::I64);
        let logits = model.forward(ids, None, &mut NoHooks).unwrap();
        let d = max_abs_diff(&logits, &o[&format!("{name}.{which}_logits")]);
        assert!(d < 1e-5, "{name} {which} logits differ by {d}");
    }
}

fn check_taps(name: &str) {
    let model = load(name);
    let o = oracle(name);
    let comps: Vec<Component> = Component::ALL
        .iter()
        .copied()
        .filter(|c| !c.is_head() && *c != Component::AttentionWeight)
        .collect();
    let mut hooks = Collect::at(comps.iter().map(|c| Site::new(1, *c)).collect());
    model
        .forward(&o[&format!("{name}.base_input_ids")], None, &mut hooks)
        .unwrap();
    for c in comps {
        let want = &o[&format!("{name}.sweep.collect.l1.{c}.base_allpos")];
        let got = &hooks.got[&Site::new(1, c)];
        assert_eq!(got.len(), 1, "{name} {c}: called once");
        let d = max_abs_diff(&got[0], want);
        assert!(d < 1e-5, "{name} {c}: differs from pyvene by {d}");
    }
}

#[test]
fn gpt2_logits_match_pyvene() {
    check_logits("gpt2");
}

#[test]
fn llama_logits_match_pyvene() {
    check_logits("llama");
}

#[test]
fn gpt2_every_component_tap_matches_pyvene() {
    check_taps("gpt2");
}

#[test]
fn llama_every_component_tap_matches_pyvene() {
    check_taps("llama");
}

/// Head components are views of their tap: the split of the collected query output at head 1
/// is what pyvene intervened on (the width per head is what the manifest records).
#[test]
fn head_components_split_their_tap() {
    for (name, q_heads, kv_heads) in [("gpt2", 2, 2), ("llama", 4, 2)] {
        let model = load(name);
        let o = oracle(name);
        use vene_hooks::HookableModel;
        let q = model.component_shape(Component::HeadQueryOutput).unwrap();
        let k = model.component_shape(Component::HeadKeyOutput).unwrap();
        assert_eq!((q.n_heads, k.n_heads), (q_heads, kv_heads), "{name}");
        let want = o[&format!("{name}.sweep.collect.l1.key_output.base_allpos")].clone();
        let split = vene_hooks::split_heads(&want, k.n_heads).unwrap();
        assert_eq!(split.dims()[3], k.head_dim(), "{name}");
    }
}

#[test]
fn gpt2_attention_weights_are_causal_probabilities() {
    let model = load("gpt2");
    let o = oracle("gpt2");
    let mut hooks = Collect::at(vec![Site::new(0, Component::AttentionWeight)]);
    model
        .forward(&o["gpt2.base_input_ids"], None, &mut hooks)
        .unwrap();
    let w = &hooks.got[&Site::new(0, Component::AttentionWeight)][0];
    assert_eq!(w.dims(), &[2, 2, 6, 6]);
    let rows = w
        .sum(3)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert!(rows.iter().all(|s| (s - 1.0).abs() < 1e-5));
    let w4: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
    // Above the diagonal (key after query) the probability is 0.
    for bh in 0..4 {
        for q in 0..6 {
            for k in (q + 1)..6 {
                assert_eq!(w4[bh * 36 + q * 6 + k], 0.0);
            }
        }
    }
}

/// A hook's return value is what the model continues with: zeroing the last block's output
/// leaves ln_f(0) = ln_f.bias, so every logit row is ln_f.bias @ wte^T.
#[test]
fn hook_replacement_is_used_downstream() {
    struct Zero;
    impl vene_hooks::Hooks for Zero {
        fn is_active(&self, site: Site) -> bool {
            site == Site::new(1, Component::BlockOutput)
        }
        fn on_activation(
            &mut self,
            _: vene_hooks::HookCall,
            x: candle_core::Tensor,
        ) -> vene_hooks::Result<candle_core::Tensor> {
            Ok(x.zeros_like()?)
        }
    }
    let model = load("gpt2");
    let o = oracle("gpt2");
    let logits = model
        .forward(&o["gpt2.base_input_ids"], None, &mut Zero)
        .unwrap();
    let w = load_tensors(fixture("tiny-gpt2/model.safetensors"));
    let want = w["transformer.ln_f.bias"]
        .unsqueeze(0)
        .unwrap()
        .matmul(&w["transformer.wte.weight"].t().unwrap())
        .unwrap()
        .broadcast_as((2, 6, 64))
        .unwrap()
        .contiguous()
        .unwrap();
    assert!(max_abs_diff(&logits, &want) < 1e-5);
    let base = model
        .forward(&o["gpt2.base_input_ids"], None, &mut NoHooks)
        .unwrap();
    assert!(max_abs_diff(&logits, &base) > 1e-2);
}

#[test]
fn half_precision_loads_close_to_f32() {
    let o = oracle("llama");
    for dtype in [DType::F16, DType::BF16] {
        for name in ["gpt2", "llama"] {
            let model =
                Model::from_dir(fixture(&format!("tiny-{name}")), dtype, &Device::Cpu).unwrap();
            assert_eq!(model.dtype(), dtype);
            let o = if name == "llama" {
                o.clone()
            } else {
                oracle("gpt2")
            };
            let logits = model
                .forward(&o[&format!("{name}.base_input_ids")], None, &mut NoHooks)
                .unwrap();
            assert_eq!(logits.dtype(), dtype);
            let d = max_abs_diff(&logits, &o[&format!("{name}.base_logits")]);
            assert!(d < 5e-2, "{name} {dtype:?}: differs by {d}");
        }
    }
}

/// `run_with_cache` keeps what pyvene collects at every component of layer 1, and the logits
/// of a plain forward; with no logits and `stop_after`, only the layers up to it.
fn check_run_with_cache(name: &str) {
    let model = load(name);
    let o = oracle(name);
    let ids = &o[&format!("{name}.base_input_ids")];
    let layer1 = |s: Site| s.layer == 1 && s.component != Component::AttentionWeight;
    let (logits, cache) = model
        .run_with_cache(ids, &vene_models::LogitsAt::All, &layer1, None)
        .unwrap();
    let d = max_abs_diff(&logits.unwrap(), &o[&format!("{name}.base_logits")]);
    assert!(d < 1e-5, "{name} logits differ by {d}");
    let comps: Vec<Component> = Component::ALL
        .iter()
        .copied()
        .filter(|c| !c.is_head() && *c != Component::AttentionWeight)
        .collect();
    assert_eq!(
        cache.len(),
        comps.len() + Component::EXTENSIONS.len(),
        "{name}: one activation per component, pyvene's and vene's resid_mid"
    );
    assert!(cache.get(1, Component::ResidMid).is_some());
    for c in comps {
        let want = &o[&format!("{name}.sweep.collect.l1.{c}.base_allpos")];
        let d = max_abs_diff(cache.get(1, c).unwrap(), want);
        assert!(d < 1e-5, "{name} {c}: differs from pyvene by {d}");
    }
    let by_name = cache.get_by_name("blocks.1.hook_resid_post").unwrap();
    assert_eq!(
        max_abs_diff(by_name, cache.get(1, Component::BlockOutput).unwrap()),
        0.0
    );

    let every = |_: Site| true;
    let (logits, cache) = model
        .run_with_cache(ids, &vene_models::LogitsAt::Nothing, &every, Some(0))
        .unwrap();
    assert!(logits.is_none());
    assert!(
        cache.sites().all(|s| s.layer == 0),
        "{name}: stopped after layer 0"
    );
    assert!(cache.get(0, Component::BlockOutput).is_some());
    assert!(cache.get(0, Component::AttentionWeight).is_some());
}

#[test]
fn gpt2_run_with_cache_matches_pyvene() {
    check_run_with_cache("gpt2");
}

#[test]
fn llama_run_with_cache_matches_pyvene() {
    check_run_with_cache("llama");
}
