//! Forward-pass cost of the hook mechanism: plain forward (`NoHooks`) vs a hook set that is
//! active nowhere (a distinct type, so the check is a real virtual call) vs a collecting hook at
//! one site (block_output of the middle layer).
//!
//! Models: a GPT-2-small-shaped random model (12 layers, d=768, 12 heads, vocab 50257) on
//! batch 8 x 128 tokens, and the tiny fixture GPT-2 on the fixture's 2 x 6 base batch.

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use vene_hooks::{Component, HookCall, Hooks, NoHooks, Site};
use vene_models::{Gpt2Config, LanguageModel, Model};

/// Active nowhere, but not `NoHooks`.
struct Inactive;

impl Hooks for Inactive {
    fn is_active(&self, _site: Site) -> bool {
        false
    }
    fn on_activation(&mut self, _call: HookCall, x: Tensor) -> vene_hooks::Result<Tensor> {
        Ok(x)
    }
}

/// Keeps the activation at one site.
struct CollectOne {
    site: Site,
    got: Option<Tensor>,
}

impl Hooks for CollectOne {
    fn is_active(&self, site: Site) -> bool {
        site == self.site
    }
    fn on_activation(&mut self, _call: HookCall, x: Tensor) -> vene_hooks::Result<Tensor> {
        self.got = Some(x.clone());
        Ok(x)
    }
}

fn bench_model(c: &mut Criterion, name: &str, model: &Model, ids: &Tensor) {
    let mid = vene_hooks::HookableModel::n_layers(model) / 2;
    let mut group = c.benchmark_group(format!("forward/{name}"));
    group.sample_size(10);
    group.bench_function("no_hooks", |b| {
        b.iter(|| model.forward(ids, None, &mut NoHooks).expect("forward"))
    });
    group.bench_function("inactive_hooks", |b| {
        b.iter(|| model.forward(ids, None, &mut Inactive).expect("forward"))
    });
    group.bench_function("collect_block_output_mid", |b| {
        let mut hooks = CollectOne {
            site: Site::new(mid, Component::BlockOutput),
            got: None,
        };
        b.iter(|| model.forward(ids, None, &mut hooks).expect("forward"))
    });
    group.finish();
}

fn forward(c: &mut Criterion) {
    let device = Device::Cpu;
    // detached: the untracked path users run on a loaded model (a Var-backed model is ~30%
    // slower and measures autograd bookkeeping instead)
    let small = Model::random_gpt2(&Gpt2Config::gpt2_small(), DType::F32, &device)
        .and_then(|(m, _vars)| m.detached())
        .expect("random model");
    let (batch, seq, vocab) = (8usize, 128usize, 50257usize);
    let tokens: Vec<u32> = (0..batch * seq)
        .map(|i| ((i * 389 + 7) % vocab) as u32)
        .collect();
    let ids = Tensor::from_vec(tokens, (batch, seq), &device).expect("ids");
    bench_model(c, "gpt2_small_8x128", &small, &ids);

    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/pyvene/tiny-gpt2"
    );
    let tiny = Model::from_dir(dir, DType::F32, &device).expect("tiny fixture");
    let ids =
        Tensor::new(&[[1u32, 7, 22, 40, 3, 9], [5, 63, 2, 17, 30, 11]], &device).expect("ids");
    bench_model(c, "tiny_gpt2_2x6", &tiny, &ids);
}

criterion_group!(benches, forward);
criterion_main!(benches);
