//! AutoencoderIntervention: the rank-|dims| selective path vs plain encode-swap-decode.
//!
//! d = 768, L = 24576, 1024 positions ([8, 128, 768]), 16 selected latents, f32, CPU.
//! Run: `cargo bench -p vene-interventions --bench ae_intervention -- --warm-up-time 1 --measurement-time 3`

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use vene_autoencoder::AutoencoderLayer;
use vene_interventions::{AutoencoderIntervention, AutoencoderMode, Intervention, Selection};

fn bench(c: &mut Criterion) {
    let dev = Device::Cpu;
    let (d, l) = (768, 24576);
    let layer = AutoencoderLayer::new(d, l, DType::F32, &dev).expect("autoencoder");
    let dims: Vec<usize> = (0..16).map(|i| i * 1531 % l).collect();
    let iv = AutoencoderIntervention::from_layer(layer)
        .expect("intervention")
        .with_interchange_dim(dims)
        .expect("dims");
    let base = Tensor::randn(0f32, 1., (8, 128, d), &dev).expect("base");
    let source = Tensor::randn(0f32, 1., (8, 128, d), &dev).expect("source");
    let mut g = c.benchmark_group("ae_intervention_d768_L24576_1024pos_16dims");
    g.sample_size(10);
    for (mode, mname) in [
        (AutoencoderMode::Reconstruction, "reconstruction"),
        (AutoencoderMode::ErrorPreserving, "error_preserving"),
    ] {
        for (selective, pname) in [(true, "selective"), (false, "plain")] {
            let iv = iv.clone().with_mode(mode).with_selective(selective);
            g.bench_function(format!("{mname}/{pname}"), |b| {
                b.iter(|| {
                    iv.forward(&base, Some(&source), &Selection::Default)
                        .expect("forward")
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
