//! One SAE training step per architecture (forward, loss, backward, Adam update, decoder
//! renorm, dead-latent counts: [`SaeTrainer::step`], the step `train_sae` runs per batch), f32
//! on the CPU, beside the matrix products such a step cannot avoid, timed in the same run.
//!
//! Shape: `VENE_BENCH_TRAIN_SHAPE=DxLxB` (input width x latents x batch rows), default
//! `768x16384x4096`; e.g. `VENE_BENCH_TRAIN_SHAPE=64x512x256` for a quick smoke run.
//!
//! The baseline `gemm_5` is the five products of a step at that shape, each
//! `2 * B * d * L` FLOPs, laid out as candle's autograd lays them out:
//! encode `x W_enc`, decode `z W_dec`, and the backward `dW_dec = z^T dR`,
//! `dz = dR W_dec^T`, `dW_enc = x^T dz`. `gemm_dx` is the sixth an SAE also needs: the
//! gradient of the encoder input `dz W_enc^T`, through which `b_dec` (subtracted from the
//! input) gets its encoder-side gradient.
//!
//! Throughput is rows (tokens) per second: criterion's `elem/s` reads as tokens/s.
//!
//! ```text
//! cargo bench -p vene-autoencoder --bench train_step -- --warm-up-time 1 --measurement-time 5 --noplot
//! ```

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use vene_autoencoder::training::{Architecture, SaeTrainConfig, SaeTrainer, TrainingSae};

/// `(d, latents, batch)` from `VENE_BENCH_TRAIN_SHAPE`.
fn shape() -> (usize, usize, usize) {
    let s = std::env::var("VENE_BENCH_TRAIN_SHAPE").unwrap_or_else(|_| "768x16384x4096".into());
    let dims: Vec<usize> = s
        .split('x')
        .map(|v| v.trim().parse().ok().filter(|&n| n > 0))
        .collect::<Option<_>>()
        .unwrap_or_default();
    match dims[..] {
        [d, l, b] => (d, l, b),
        _ => panic!("VENE_BENCH_TRAIN_SHAPE must be DxLxB with positive numbers, got {s:?}"),
    }
}

/// The architectures benched, by name (k = 32 for the TopK kinds, capped at the width).
fn architectures(latents: usize) -> Vec<(&'static str, Architecture)> {
    let k = 32.min(latents);
    vec![
        ("relu", Architecture::relu(5.0)),
        ("topk", Architecture::TopK { k }),
        ("batchtopk", Architecture::batch_topk(k)),
        ("jumprelu", Architecture::jumprelu()),
        (
            "gated",
            Architecture::Gated {
                l1_coefficient: 1.0,
            },
        ),
        (
            "matryoshka",
            Architecture::matryoshka(k, vec![(latents / 16).max(k), (latents / 4).max(k + 1)]),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let (d, l, b) = shape();
    let dev = Device::Cpu;
    let mut g = c.benchmark_group(format!("train_step_{d}x{l}x{b}"));
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    g.throughput(Throughput::Elements(b as u64));

    let x = Tensor::randn(0f32, 1., (b, d), &dev).unwrap();
    let w_enc = Tensor::randn(0f32, 0.03, (d, l), &dev).unwrap();
    let w_dec = Tensor::randn(0f32, 0.03, (l, d), &dev).unwrap();
    let z = Tensor::randn(0f32, 1., (b, l), &dev)
        .unwrap()
        .relu()
        .unwrap();
    let dr = Tensor::randn(0f32, 1., (b, d), &dev).unwrap();
    g.bench_function("gemm_5", |bch| {
        bch.iter(|| {
            let pre = x.matmul(&w_enc).unwrap();
            let recon = z.matmul(&w_dec).unwrap();
            let dw_dec = z.t().unwrap().matmul(&dr).unwrap();
            let dz = dr.matmul(&w_dec.t().unwrap()).unwrap();
            let dw_enc = x.t().unwrap().matmul(&dz).unwrap();
            (pre, recon, dw_dec, dw_enc)
        })
    });
    g.bench_function("gemm_dx", |bch| {
        bch.iter(|| z.matmul(&w_enc.t().unwrap()).unwrap())
    });
    drop((w_enc, w_dec, z, dr));

    for (name, arch) in architectures(l) {
        let cfg = SaeTrainConfig::new(arch);
        let mut trainer: Option<SaeTrainer> = None;
        g.bench_function(name, |bch| {
            let t = trainer.get_or_insert_with(|| {
                let sae = TrainingSae::new(&cfg, d, l, DType::F32, &dev).unwrap();
                SaeTrainer::new(sae, &cfg).unwrap()
            });
            bch.iter(|| t.step(&x).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
