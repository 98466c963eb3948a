//! Padded batches give each sequence its own logits; cached decoding equals recomputation.

mod common;

use candle_core::{DType, Device, IndexOp, Tensor};
use common::Collect;
use vene_hooks::{Component, NoHooks, Site};
use vene_models::{LanguageModel, Model};
use vene_testutil::{fixture, max_abs_diff, oracle};

fn load(name: &str) -> Model {
    Model::from_dir(fixture(&format!("tiny-{name}")), DType::F32, &Device::Cpu).unwrap()
}

fn rows(r: &[Vec<u32>]) -> Tensor {
    let len = r[0].len();
    let flat: Vec<u32> = r.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (r.len(), len), &Device::Cpu).unwrap()
}

fn ids_of(name: &str) -> (Vec<u32>, Vec<u32>) {
    let o = oracle(name);
    let ids = o[&format!("{name}.source_input_ids")]
        .to_dtype(DType::U32)
        .unwrap();
    let rows = ids.to_vec2::<u32>().unwrap();
    (rows[0].clone(), rows[1][..4].to_vec())
}

fn check_padding(name: &str, left: bool) {
    let model = load(name);
    let (a, b) = ids_of(name); // 7 and 4 tokens
    let pad = 3usize;
    let mut b_row = b.clone();
    let mut b_mask = vec![1u32; 4];
    if left {
        b_row.splice(0..0, vec![0; pad]);
        b_mask.splice(0..0, vec![0; pad]);
    } else {
        b_row.extend(vec![0; pad]);
        b_mask.extend(vec![0; pad]);
    }
    let ids = rows(&[a.clone(), b_row]);
    let mask = rows(&[vec![1u32; 7], b_mask]);
    let batched = model.forward(&ids, Some(&mask), &mut NoHooks).unwrap();
    let alone_a = model.forward(&rows(&[a]), None, &mut NoHooks).unwrap();
    let alone_b = model.forward(&rows(&[b]), None, &mut NoHooks).unwrap();
    let start = if left { pad } else { 0 };
    let got_b = batched.i((1..2, start..start + 4, ..)).unwrap();
    let d_b = max_abs_diff(&got_b, &alone_b);
    let d_a = max_abs_diff(&batched.i(0..1).unwrap(), &alone_a);
    assert!(d_a < 1e-5 && d_b < 1e-5, "{name} left={left}: {d_a} {d_b}");
    assert!(batched
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .all(|v| v.is_finite()));
}

#[test]
fn gpt2_left_padding() {
    check_padding("gpt2", true);
}
#[test]
fn gpt2_right_padding() {
    check_padding("gpt2", false);
}
#[test]
fn llama_left_padding() {
    check_padding("llama", true);
}
#[test]
fn llama_right_padding() {
    check_padding("llama", false);
}

/// Prompt of 3 tokens, then the rest one by one: the logits equal the full forward pass, and the
/// hooks see each step's new tokens with seq_offset = cache length.
fn check_cache(name: &str) {
    let model = load(name);
    let o = oracle(name);
    let ids = o[&format!("{name}.source_input_ids")]
        .to_dtype(DType::U32)
        .unwrap();
    let full = model.forward(&ids, None, &mut NoHooks).unwrap();
    let mut cache = model.new_cache();
    let site = Site::new(1, Component::KeyOutput);
    let mut hooks = Collect::at(vec![site]);
    let mut parts = vec![model
        .forward_cached(&ids.narrow(1, 0, 3).unwrap(), None, &mut cache, &mut hooks)
        .unwrap()];
    for t in 3..7 {
        parts.push(
            model
                .forward_cached(&ids.narrow(1, t, 1).unwrap(), None, &mut cache, &mut hooks)
                .unwrap(),
        );
    }
    assert_eq!(cache.len(), 7);
    let cached = Tensor::cat(&parts, 1).unwrap();
    let d = max_abs_diff(&cached, &full);
    assert!(d < 1e-5, "{name}: cached logits differ by {d}");
    let offsets: Vec<usize> = hooks.offsets.iter().map(|(_, o)| *o).collect();
    assert_eq!(offsets, vec![0, 3, 4, 5, 6]);
    assert_eq!(hooks.got[&site][1].dims()[1], 1);
}

#[test]
fn gpt2_cache_equals_recompute() {
    check_cache("gpt2");
}
#[test]
fn llama_cache_equals_recompute() {
    check_cache("llama");
}

/// Left-padded batch decoded with a cache (mask covering cache + new tokens) equals the full
/// masked forward pass.
#[test]
fn cache_with_padding_mask() {
    for name in ["gpt2", "llama"] {
        let model = load(name);
        let (a, b) = ids_of(name);
        let mut b_row = vec![0u32; 3];
        b_row.extend(&b);
        let ids = rows(&[a, b_row]);
        let mask = rows(&[vec![1u32; 7], vec![0, 0, 0, 1, 1, 1, 1]]);
        let full = model.forward(&ids, Some(&mask), &mut NoHooks).unwrap();
        let mut cache = model.new_cache();
        let p1 = model
            .forward_cached(
                &ids.narrow(1, 0, 5).unwrap(),
                Some(&mask.narrow(1, 0, 5).unwrap()),
                &mut cache,
                &mut NoHooks,
            )
            .unwrap();
        let p2 = model
            .forward_cached(
                &ids.narrow(1, 5, 1).unwrap(),
                Some(&mask.narrow(1, 0, 6).unwrap()),
                &mut cache,
                &mut NoHooks,
            )
            .unwrap();
        let p3 = model
            .forward_cached(
                &ids.narrow(1, 6, 1).unwrap(),
                Some(&mask),
                &mut cache,
                &mut NoHooks,
            )
            .unwrap();
        let cached = Tensor::cat(&[p1, p2, p3], 1).unwrap();
        // Compare at real tokens only (row 1 starts at 3).
        assert!(
            max_abs_diff(&cached.i(0).unwrap(), &full.i(0).unwrap()) < 1e-5,
            "{name}"
        );
        assert!(
            max_abs_diff(&cached.i((1, 3..)).unwrap(), &full.i((1, 3..)).unwrap()) < 1e-5,
            "{name}"
        );
    }
}

#[test]
fn cache_of_another_model_or_batch_is_rejected() {
    let model = load("gpt2");
    let ids = Tensor::new(&[[1u32, 2], [3, 4]], &Device::Cpu).unwrap();
    let mut cache = model.new_cache();
    model
        .forward_cached(&ids, None, &mut cache, &mut NoHooks)
        .unwrap();
    let one = Tensor::new(&[[5u32]], &Device::Cpu).unwrap();
    let err = model
        .forward_cached(&one, None, &mut cache, &mut NoHooks)
        .unwrap_err();
    assert!(err.to_string().contains("batch of 2"), "{err}");
    let mut wrong = vene_models::KvCache::new(5);
    let err = model
        .forward_cached(&one, None, &mut wrong, &mut NoHooks)
        .unwrap_err();
    assert!(err.to_string().contains("5 layers"), "{err}");
}
