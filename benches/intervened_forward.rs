//! A GPT-2-small forward (random weights, batch 8 x 128 tokens) three ways: plain, with
//! hooks that are all inactive, and with an SAE interchange (d = 768, L = 24576, 16
//! latents, at the middle layer's block output, every position).
//!
//! Device and dtype from `VENE_TEST_DEVICE` (cpu, cuda, cuda:N, metal; default cpu) and
//! `VENE_BENCH_DTYPE` (f32, f16, bf16; default f32); the group is named
//! `intervened_forward/{device}_{dtype}`. The SAE computes in f32 unless
//! `VENE_BENCH_SAE_DTYPE` says otherwise. Run briefly, e.g.
//! `cargo bench -p vene --bench intervened_forward -- --warm-up-time 1 --measurement-time 3`.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use vene::autoencoder::ReluAutoencoder;
use vene::hooks::{Component, HookCall, Hooks, NoHooks, Site};
use vene::interventions::AutoencoderIntervention;
use vene::models::{Gpt2Config, LanguageModel, Model};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, LogitsAt, RepresentationConfig,
    UnitLocations,
};

/// Hooks that say no to every site.
struct Inactive;

impl Hooks for Inactive {
    fn is_active(&self, _site: Site) -> bool {
        false
    }
    fn on_activation(&mut self, _call: HookCall, x: Tensor) -> vene::hooks::Result<Tensor> {
        Ok(x)
    }
}

fn dtype_from_env(var: &str, default: DType) -> DType {
    match std::env::var(var).as_deref() {
        Ok("f16") => DType::F16,
        Ok("bf16") => DType::BF16,
        Ok("f32") | Err(_) => default,
        Ok(other) => panic!("{var}={other}: expected f32, f16 or bf16"),
    }
}

fn tag(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}

fn bench(c: &mut Criterion) {
    let device = vene_testutil::device();
    let dtype = dtype_from_env("VENE_BENCH_DTYPE", DType::F32);
    let sae_dtype = dtype_from_env("VENE_BENCH_SAE_DTYPE", DType::F32);
    // detached: the untracked path users run on a loaded model
    let model = Model::random_gpt2(&Gpt2Config::gpt2_small(), dtype, &device)
        .and_then(|(m, _vars)| m.detached())
        .expect("random GPT-2");
    let (batch, seq, vocab) = (8usize, 128usize, 50257usize);
    let tokens: Vec<u32> = (0..batch * seq)
        .map(|i| ((i * 389 + 7) % vocab) as u32)
        .collect();
    let ids = Tensor::from_vec(tokens.clone(), (batch, seq), &device).expect("ids");
    let source_tokens: Vec<u32> = tokens.iter().map(|t| (t * 7 + 3) % vocab as u32).collect();
    let source = Tensor::from_vec(source_tokens, (batch, seq), &device).expect("source ids");

    let (d, l) = (768, 24576);
    let randn = |shape: (usize, usize)| {
        Tensor::randn(0f32, 0.03, shape, &device)
            .and_then(|t| t.to_dtype(sae_dtype))
            .expect("weights")
    };
    let zeros = |n: usize| Tensor::zeros(n, sae_dtype, &device).expect("bias");
    let sae = ReluAutoencoder::from_tensors(randn((d, l)), zeros(l), randn((l, d)), zeros(d))
        .expect("SAE");
    let dims: Vec<usize> = (0..16).map(|i| i * 1531 % l).collect();
    let positions: Vec<usize> = (0..seq).collect();
    let iv = AutoencoderIntervention::new(Arc::new(sae))
        .and_then(|iv| iv.with_interchange_dim(dims))
        .expect("intervention");
    let repr = RepresentationConfig::new(6, Component::BlockOutput).intervention(Arc::new(iv));
    let intervened = IntervenableModel::new(IntervenableConfig::new(vec![repr]), model.clone())
        .expect("intervenable");
    let request =
        ForwardRequest::new(ids.clone())
            .source(source)
            .locations(UnitLocations::sources_to_base(
                vec![vec![positions.clone(); batch]],
                vec![vec![positions; batch]],
            ));

    let sync = || device.synchronize().expect("synchronize");
    let mut g = c.benchmark_group(format!("intervened_forward/{}_{dtype:?}", tag(&device)));
    g.sample_size(10);
    g.bench_function("plain", |b| {
        b.iter(|| {
            let out = model.forward(&ids, None, &mut NoHooks).expect("forward");
            sync();
            out
        })
    });
    g.bench_function("inactive_hooks", |b| {
        b.iter(|| {
            let out = model.forward(&ids, None, &mut Inactive).expect("forward");
            sync();
            out
        })
    });
    g.bench_function("sae_interchange_16_latents", |b| {
        b.iter(|| {
            let out = intervened.forward(&request).expect("intervened forward");
            sync();
            out
        })
    });
    let last_only = request.clone().logits(LogitsAt::Last);
    g.bench_function("sae_interchange_16_latents_last_logits", |b| {
        b.iter(|| {
            let out = intervened.forward(&last_only).expect("intervened forward");
            sync();
            out
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
