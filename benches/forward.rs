//! Forward-pass cost of the hook mechanism: plain forward (`NoHooks`) vs a hook set that is
//! active nowhere (a distinct type, so the check is a real virtual call) vs a collecting hook at
//! one site (block_output of the middle layer).
//!
//! Also: whether a base and a source run pay to share their common prefix (`shared_prefix/*`),
//! and the matrix products of a GPT-2-small forward alone (`matmul_rate/*`: the 48 linear
//! layers and the LM head at the forward's shapes, through the same vene-kernels call), so
//! that `matmul_rate / forward` is the fraction of the matmul rate the whole forward reaches.
//!
//! Models: a GPT-2-small-shaped random model (12 layers, d=768, 12 heads, vocab 50257; detached
//! from autograd, as a model loaded from disk is) on batch 8 x 128 tokens, and the tiny fixture GPT-2 on the fixture's 2 x 6 base batch.

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use vene_hooks::{Component, HookCall, Hooks, NoHooks, Site};
use vene_models::{Gpt2Config, LanguageModel, LogitsAt, Model};

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

/// Active nowhere; a run for these hooks only may stop after `0`.
struct StopAfter(usize);

impl Hooks for StopAfter {
    fn is_active(&self, _site: Site) -> bool {
        false
    }
    fn on_activation(&mut self, _call: HookCall, x: Tensor) -> vene_hooks::Result<Tensor> {
        Ok(x)
    }
    fn last_layer(&self) -> Option<usize> {
        Some(self.0)
    }
}

/// Whether base and source runs pay to share their prefix (layers 0..=5 of 12): two runs of
/// batch `b` against one run of batch `2b`, each stopped after layer 5.
fn bench_shared_prefix(c: &mut Criterion, model: &Model, batch: usize, seq: usize) {
    let ids = |b: usize| {
        let t: Vec<u32> = (0..b * seq)
            .map(|i| ((i * 389 + 7) % 50257) as u32)
            .collect();
        Tensor::from_vec(t, (b, seq), model.device()).expect("ids")
    };
    let (one, two) = (ids(batch), ids(2 * batch));
    let prefix = |x: &Tensor| {
        model
            .forward_logits_at(x, None, None, &LogitsAt::Nothing, &mut StopAfter(5))
            .expect("prefix")
    };
    let mut group = c.benchmark_group(format!("shared_prefix/b{batch}t{seq}"));
    group.sample_size(10);
    group.bench_function("two_runs", |b| {
        b.iter(|| {
            prefix(&one);
            prefix(&one)
        })
    });
    group.bench_function("one_run_of_twice_the_batch", |b| b.iter(|| prefix(&two)));
    group.finish();
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

/// The products of one GPT-2-small forward over `rows` tokens, alone: per layer the fused
/// q/k/v (768 -> 2304), the attention output (768 -> 768), the MLP (768 -> 3072 -> 768), all
/// `[in, out]` with a bias as GPT-2 stores them; then the LM head `[50257, 768]`, no bias.
fn bench_matmul_rate(c: &mut Criterion, rows: usize) {
    use vene_kernels::WeightLayout;
    let device = Device::Cpu;
    let randn = |shape: &[usize]| Tensor::randn(0f32, 0.02, shape, &device).expect("randn");
    let shapes = [(768usize, 2304usize), (768, 768), (768, 3072), (3072, 768)];
    let layer: Vec<(Tensor, Tensor, Tensor)> = shapes
        .iter()
        .map(|&(d_in, d_out)| (randn(&[rows, d_in]), randn(&[d_in, d_out]), randn(&[d_out])))
        .collect();
    let head = randn(&[50257, 768]);
    let head_in = randn(&[rows, 768]);
    let mut group = c.benchmark_group(format!("matmul_rate/gpt2_small_{rows}_tokens"));
    group.sample_size(10);
    group.bench_function("products_of_one_forward", |b| {
        b.iter(|| {
            for _ in 0..12 {
                for (x, w, bias) in &layer {
                    vene_kernels::linear(x, w, Some(bias), WeightLayout::InOut).expect("linear");
                }
            }
            vene_kernels::linear(&head_in, &head, None, WeightLayout::OutIn).expect("head")
        })
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
    bench_matmul_rate(c, batch * seq);
    bench_shared_prefix(c, &small, 1, 32);
    bench_shared_prefix(c, &small, 8, 128);

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
