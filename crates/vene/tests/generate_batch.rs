//! Batched generation (left padding, per-example locations and sources, per-example stops)
//! equals generating each example alone, on the tiny GPT-2 and Llama fixtures.

mod common;

use candle_core::{Device, Tensor};
use common::*;
use vene::hooks::{Component, NoHooks};
use vene::models::{generate_batch, left_pad, GenerationConfig, LanguageModel};
use vene::{
    ForwardRequest, Input, IntervenableConfig, IntervenableModel, InterveneOn,
    RepresentationConfig, UnitLocations,
};

const PROMPTS: [&[u32]; 3] = [&[5, 9, 17, 3, 22], &[7, 1], &[30, 2, 11]];
const SOURCES: [&[u32]; 3] = [&[12, 4, 9, 40, 3], &[6, 13], &[2, 50, 1]];
/// Unpadded (source, base) positions of each example.
const LOCS: [(usize, usize); 3] = [(1, 2), (0, 1), (2, 1)];

fn ids(t: &[u32]) -> Tensor {
    Tensor::new(t, &Device::Cpu).unwrap().unsqueeze(0).unwrap()
}

fn padded(p: &[&[u32]]) -> (Tensor, Tensor, usize) {
    let v: Vec<Vec<u32>> = p.iter().map(|x| x.to_vec()).collect();
    let t = v.iter().map(Vec::len).max().unwrap();
    let (ids, mask) = left_pad(&v, 0, &Device::Cpu).unwrap();
    (ids, mask, t)
}

fn vanilla(m: &str) -> IntervenableModel<vene::models::Model> {
    let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)]);
    IntervenableModel::new(cfg, model(m)).unwrap()
}

fn alone_locs(i: usize) -> UnitLocations {
    let (s, b) = LOCS[i];
    UnitLocations::sources_to_base(vec![vec![vec![s]]], vec![vec![vec![b]]])
}

/// The logits of `prompt ++ new[..n-1]` at the positions the new tokens were picked from.
fn logits_alone(
    im: &IntervenableModel<vene::models::Model>,
    i: usize,
    new: &[u32],
    intervene: bool,
) -> Tensor {
    let mut seq = PROMPTS[i].to_vec();
    seq.extend_from_slice(&new[..new.len() - 1]);
    let all = if intervene {
        let req = ForwardRequest::new(ids(&seq))
            .source(ids(SOURCES[i]))
            .locations(alone_locs(i));
        im.forward(&req).unwrap().intervened
    } else {
        im.model().forward(&ids(&seq), None, &mut NoHooks).unwrap()
    };
    all.squeeze(0)
        .unwrap()
        .narrow(0, PROMPTS[i].len() - 1, new.len())
        .unwrap()
}

#[test]
fn a_padded_batch_generates_what_each_example_generates_alone() {
    for m in ["gpt2", "llama"] {
        let im = vanilla(m);
        let mut cfg = GenerationConfig {
            max_new_tokens: 6,
            ..Default::default()
        };
        let alone: Vec<Vec<u32>> = PROMPTS
            .iter()
            .map(|p| vene::models::generate(im.model(), p, &cfg, &mut NoHooks).unwrap())
            .collect();
        // example 1 stops at its third token; the others go on (or stop at it too, alone as well)
        cfg.stop_tokens = vec![alone[1][2]];
        let alone: Vec<Vec<u32>> = PROMPTS
            .iter()
            .map(|p| vene::models::generate(im.model(), p, &cfg, &mut NoHooks).unwrap())
            .collect();
        assert!(alone[1].len() <= 3, "{m}");
        let (ids_b, mask, _) = padded(&PROMPTS);
        let out = generate_batch(im.model(), &ids_b, Some(&mask), &cfg, &mut NoHooks).unwrap();
        assert_eq!(out.tokens, alone, "{m}: tokens");
        for (i, new) in alone.iter().enumerate() {
            let want = logits_alone(&im, i, new, false);
            let d = max_abs_diff(&out.logits[i], &want);
            assert!(d <= 1e-5, "{m} example {i}: logits differ by {d}");
        }
    }
}

#[test]
fn interventions_per_example_in_a_padded_batch_equal_each_example_alone() {
    for m in ["gpt2", "llama"] {
        let im = vanilla(m);
        let cfg = GenerationConfig {
            max_new_tokens: 5,
            ..Default::default()
        };
        let (base, base_mask, tb) = padded(&PROMPTS);
        let (src, src_mask, ts) = padded(&SOURCES);
        // the locations of each example in its padded row
        let shift = |t: usize, len: usize, p: usize| t - len + p;
        let src_pos: Vec<Vec<usize>> = (0..3)
            .map(|i| vec![shift(ts, SOURCES[i].len(), LOCS[i].0)])
            .collect();
        let base_pos: Vec<Vec<usize>> = (0..3)
            .map(|i| vec![shift(tb, PROMPTS[i].len(), LOCS[i].1)])
            .collect();
        let req = ForwardRequest::new(Input::with_mask(base, base_mask))
            .source(Input::with_mask(src, src_mask))
            .locations(UnitLocations::sources_to_base(
                vec![src_pos],
                vec![base_pos],
            ));
        for on in [
            InterveneOn::Prompt,
            InterveneOn::GeneratedSteps,
            InterveneOn::PromptAndSteps,
        ] {
            let out = im.generate_batch(&req, on, &cfg).unwrap();
            let mut changed = false;
            for i in 0..3 {
                let alone_req = ForwardRequest::new(ids(PROMPTS[i]))
                    .source(ids(SOURCES[i]))
                    .locations(alone_locs(i));
                let alone = im.generate(&alone_req, on, &cfg).unwrap();
                assert_eq!(out.tokens[i], alone, "{m} {on:?} example {i}: tokens");
                if on == InterveneOn::Prompt {
                    let want = logits_alone(&im, i, &alone, true);
                    let d = max_abs_diff(&out.logits[i], &want);
                    assert!(d <= 1e-5, "{m} example {i}: logits differ by {d}");
                    let plain = logits_alone(&im, i, &alone, false);
                    changed |= max_abs_diff(&out.logits[i], &plain) > 1e-4;
                }
            }
            if on == InterveneOn::Prompt {
                assert!(changed, "{m}: the intervention changed nothing");
            }
        }
    }
}

#[test]
fn seeded_sampling_in_a_batch_equals_each_example_alone() {
    for m in ["gpt2", "llama"] {
        let im = vanilla(m);
        let cfg = GenerationConfig {
            max_new_tokens: 6,
            temperature: 0.9,
            top_k: Some(20),
            seed: 11,
            ..Default::default()
        };
        let (ids_b, mask, _) = padded(&PROMPTS);
        let out = generate_batch(im.model(), &ids_b, Some(&mask), &cfg, &mut NoHooks).unwrap();
        for (i, p) in PROMPTS.iter().enumerate() {
            let alone = vene::models::generate(im.model(), p, &cfg, &mut NoHooks).unwrap();
            assert_eq!(out.tokens[i], alone, "{m} example {i}");
        }
        let greedy = GenerationConfig {
            max_new_tokens: 6,
            ..Default::default()
        };
        let g = generate_batch(im.model(), &ids_b, Some(&mask), &greedy, &mut NoHooks).unwrap();
        assert_ne!(g.tokens, out.tokens, "{m}: sampling gave the greedy tokens");
    }
}

#[test]
fn attention_weight_interventions_refuse_generated_steps() {
    let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(
        0,
        Component::AttentionWeight,
    )]);
    let im = IntervenableModel::new(cfg, model("gpt2")).unwrap();
    let req = ForwardRequest::new(ids(PROMPTS[0])).source(ids(SOURCES[0]));
    let gen = GenerationConfig::default();
    let err = im
        .generate_batch(&req, InterveneOn::GeneratedSteps, &gen)
        .unwrap_err()
        .to_string();
    assert!(err.contains("prompt only"), "{err}");
    // on the prompt they act (every head's probabilities come from the source): the first
    // new token is picked from the intervened forward's last logits
    let swapped = im.generate_batch(&req, InterveneOn::Prompt, &gen).unwrap();
    assert_eq!(
        swapped.tokens[0],
        im.generate(&req, InterveneOn::Prompt, &gen).unwrap()
    );
    let fwd = im.forward(&req.clone().output_original(true)).unwrap();
    let t = PROMPTS[0].len();
    let last = |x: &Tensor| x.squeeze(0).unwrap().narrow(0, t - 1, 1).unwrap();
    let first_step = swapped.logits[0].narrow(0, 0, 1).unwrap();
    assert!(max_abs_diff(&first_step, &last(&fwd.intervened)) <= 1e-5);
    assert!(max_abs_diff(&last(&fwd.intervened), &last(&fwd.original.unwrap())) > 1e-6);
}

#[test]
fn bad_batches_are_refused_with_clear_errors() {
    let im = vanilla("gpt2");
    let cfg = GenerationConfig::default();
    let ids_b = Tensor::new(&[[1u32, 2, 0], [3, 4, 5]], &Device::Cpu).unwrap();
    let right = Tensor::new(&[[1u32, 1, 0], [1, 1, 1]], &Device::Cpu).unwrap();
    let err = generate_batch(im.model(), &ids_b, Some(&right), &cfg, &mut NoHooks)
        .unwrap_err()
        .to_string();
    assert!(err.contains("left padding"), "{err}");
    let empty_row = Tensor::new(&[[0u32, 0, 0], [1, 1, 1]], &Device::Cpu).unwrap();
    let err = generate_batch(im.model(), &ids_b, Some(&empty_row), &cfg, &mut NoHooks)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no real token"), "{err}");
    let req = ForwardRequest::new(Input::new(ids_b.clone()).positions(ids_b));
    let err = im
        .generate_batch(&req, InterveneOn::Prompt, &cfg)
        .unwrap_err()
        .to_string();
    assert!(err.contains("position"), "{err}");
}
