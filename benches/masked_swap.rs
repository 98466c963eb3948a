//! Masked swap: the fused op against the plain candle composition and a plain copy.
//!
//! Groups `{cpu,cuda}/N{rows}_L{width}`; throughput is the bytes of one `[N, L]` f32
//! tensor, so GB/s compare directly with `copy` (a `Tensor::copy` of base, measured in
//! the same run). Run briefly, e.g.
//! `cargo bench -p vene-kernels --bench masked_swap -- --warm-up-time 1 --measurement-time 3`
//! (add `--features cuda` and the filter `cuda/` on a GPU machine).

use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::seq::SliceRandom;
use rand::{rngs::StdRng, SeedableRng};
use vene_kernels::{masked_swap, masked_swap_inplace, masked_swap_reference};

const SHAPES: [(usize, usize); 6] = [
    (1, 16384),
    (1, 65536),
    (64, 16384),
    (64, 65536),
    (4096, 16384),
    (4096, 65536),
];

/// `k` distinct latent indices of `0..width`, in random order (all of them for `k == width`).
fn selection(k: usize, width: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut all: Vec<usize> = (0..width).collect();
    if k == width {
        return all;
    }
    all.shuffle(rng);
    all.truncate(k);
    all
}

fn sync(device: &Device) {
    device.synchronize().expect("device synchronize");
}

fn bench_device(c: &mut Criterion, device: &Device, tag: &str) {
    let mut rng = StdRng::seed_from_u64(5);
    for (rows, width) in SHAPES {
        let base = Tensor::randn(0f32, 1., (rows, width), device).expect("base");
        let source = Tensor::randn(0f32, 1., (rows, width), device).expect("source");
        let mut group = c.benchmark_group(format!("{tag}/N{rows}_L{width}"));
        group.throughput(Throughput::Bytes(
            (rows * width * DType::F32.size_in_bytes()) as u64,
        ));
        if rows * width >= 1 << 26 {
            group.sample_size(10);
        }
        group.bench_function("copy", |b| {
            b.iter(|| {
                let t = base.copy().expect("copy");
                sync(device);
                t
            })
        });
        for (label, k) in [("1", 1), ("64", 64), ("all", width)] {
            let dims = selection(k, width, &mut rng);
            group.bench_with_input(BenchmarkId::new("fused", label), &dims, |b, dims| {
                b.iter(|| {
                    let t = masked_swap(&base, &source, dims).expect("fused");
                    sync(device);
                    t
                })
            });
            group.bench_with_input(BenchmarkId::new("composition", label), &dims, |b, dims| {
                b.iter(|| {
                    let t = masked_swap_reference(&base, &source, dims).expect("reference");
                    sync(device);
                    t
                })
            });
            if k < width {
                let owned = base.copy().expect("copy");
                group.bench_with_input(BenchmarkId::new("inplace", label), &dims, |b, dims| {
                    b.iter(|| {
                        masked_swap_inplace(&owned, &source, dims).expect("inplace");
                        sync(device);
                    })
                });
            }
        }
        group.finish();
    }
}

fn benches(c: &mut Criterion) {
    bench_device(c, &Device::Cpu, "cpu");
    #[cfg(feature = "cuda")]
    {
        let device = Device::new_cuda(0).expect("a CUDA device");
        bench_device(c, &device, "cuda");
    }
}

criterion_group! {
    name = masked_swap_benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(masked_swap_benches);
