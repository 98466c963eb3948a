//! Encode / decode throughput of a GPT-2-small-sized SAE (f32, d = 768, L = 24576, 1024 rows),
//! beside a plain large f32 matmul measuring the machine's matmul peak.
//!
//! On the device of `VENE_TEST_DEVICE` (default the CPU; `cuda` on a GPU machine, see
//! scripts/gpu-check.sh); the group is `autoencoder` on the CPU, `autoencoder_{device}` else.
//!
//! Throughput is reported as elements/s where one element is one floating-point operation
//! (2 per multiply-add), so criterion's `Gelem/s` reads as GFLOP/s.

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vene_autoencoder::{Autoencoder, AutoencoderLayer, ReluAutoencoder};

const D: usize = 768;
const L: usize = 24576;
const ROWS: usize = 1024;

fn bench(c: &mut Criterion) {
    let dev = vene_testutil::device();
    let name = match &dev {
        Device::Cpu => "autoencoder".to_string(),
        Device::Cuda(_) => "autoencoder_cuda".to_string(),
        Device::Metal(_) => "autoencoder_metal".to_string(),
    };
    let sync = || dev.synchronize().unwrap();
    let mut g = c.benchmark_group(name);
    g.sample_size(10);

    // Peak: a plain 2048^3 f32 matmul.
    let n = 2048;
    let a = Tensor::randn(0f32, 1., (n, n), &dev).unwrap();
    let b = Tensor::randn(0f32, 1., (n, n), &dev).unwrap();
    g.throughput(Throughput::Elements((2 * n * n * n) as u64));
    g.bench_function("matmul_2048_f32_peak", |bch| {
        bch.iter(|| {
            let r = a.matmul(&b).unwrap();
            sync();
            r
        })
    });

    let flops = (2 * ROWS * D * L) as u64;
    let x = Tensor::randn(0f32, 1., (ROWS, D), &dev).unwrap();

    // pyvene layout (W_enc [L, d], torch Linear): x @ W_enc^T.
    let ae = AutoencoderLayer::new(D, L, DType::F32, &dev).unwrap();
    let z = ae.encode(&x).unwrap();
    g.throughput(Throughput::Elements(flops));
    g.bench_function("encode_pyvene_layout", |bch| {
        bch.iter(|| {
            let r = ae.encode(&x).unwrap();
            sync();
            r
        })
    });
    g.bench_function("decode_pyvene_layout", |bch| {
        bch.iter(|| {
            let r = ae.decode(&z).unwrap();
            sync();
            r
        })
    });

    // SAELens layout (W_enc [d, L]): x @ W_enc.
    let w_enc = Tensor::randn(0f32, 0.03, (D, L), &dev).unwrap();
    let w_dec = Tensor::randn(0f32, 0.03, (L, D), &dev).unwrap();
    let sae = ReluAutoencoder::from_tensors(
        w_enc,
        Tensor::zeros(L, DType::F32, &dev).unwrap(),
        w_dec,
        Tensor::zeros(D, DType::F32, &dev).unwrap(),
    )
    .unwrap();
    let z2 = sae.encode(&x).unwrap();
    g.bench_function("encode_saelens_layout", |bch| {
        bch.iter(|| {
            let r = sae.encode(&x).unwrap();
            sync();
            r
        })
    });
    g.bench_function("decode_saelens_layout", |bch| {
        bch.iter(|| {
            let r = sae.decode(&z2).unwrap();
            sync();
            r
        })
    });

    // Selected latents only (16 of 24576): the cost follows dims.len().
    let dims: Vec<usize> = (0..16).map(|i| i * 1531).collect();
    g.throughput(Throughput::Elements((2 * ROWS * D * dims.len()) as u64));
    g.bench_function("encode_selected_16", |bch| {
        bch.iter(|| {
            let r = ae.encode_selected(&x, &dims).unwrap();
            sync();
            r
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
