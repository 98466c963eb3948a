//! The CPU fast paths of vene-kernels against the candle ops they replace, at the shapes of
//! one GPT-2-small forward at batch 8 x 128 tokens (f32).
//!
//! Groups: `gelu_tanh`, `gelu_erf` and `silu` on `[1024, 3072]`; `softmax` on
//! `[8, 12, 128, 128]`; `layer_norm` and `rms_norm` on `[1024, 768]`; `attention` with
//! q, k, v `[8, 12, 128, 64]`, causal mask, scale 1/8 (`candle`: the composition, i.e. the
//! ops with kernels forced off; `fused`: one op; `probs+values`: the two-op path used when
//! the probabilities are hooked); `linear_bias` `[1024, 768] x [768, 3072] + b` (GPT-2's
//! `c_fc`); `linear_32rows_*` and `linear_1row_*`: the short products of a batch 1 x 32
//! forward and of last-token logits (the LM head `[50257, 768]`, no bias). Each group has `candle` and `vene`, measured in the same run, so their ratio is
//! the speed-up. Run briefly, e.g.
//! `cargo bench -p vene-kernels --bench kernels -- --warm-up-time 1 --measurement-time 3`.

use candle_core::{Device, Tensor};
use criterion::{criterion_group, criterion_main, Criterion};
use vene_kernels::{with_kernel_mode, AttentionParams, KernelMode, WeightLayout};

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1., shape, &Device::Cpu).expect("randn")
}

fn candle<R>(f: impl FnOnce() -> R) -> R {
    with_kernel_mode(KernelMode::Fallback, f)
}

type Pair = (
    fn(&Tensor) -> candle_core::Result<Tensor>,
    fn(&Tensor) -> vene_kernels::Result<Tensor>,
);

fn activations(c: &mut Criterion) {
    let x = randn(&[1024, 3072]);
    let ops: [(&str, Pair); 3] = [
        ("gelu_tanh", (Tensor::gelu, vene_kernels::gelu_tanh)),
        ("gelu_erf", (Tensor::gelu_erf, vene_kernels::gelu_erf)),
        ("silu", (Tensor::silu, vene_kernels::silu)),
    ];
    for (name, (theirs, ours)) in ops {
        let mut g = c.benchmark_group(name);
        g.bench_function("candle", |b| b.iter(|| theirs(&x).expect("candle")));
        g.bench_function("vene", |b| b.iter(|| ours(&x).expect("vene")));
        g.finish();
    }
}

fn softmax_and_norms(c: &mut Criterion) {
    let s = randn(&[8, 12, 128, 128]);
    let mut g = c.benchmark_group("softmax");
    g.bench_function("candle", |b| {
        b.iter(|| candle_nn::ops::softmax_last_dim(&s).expect("candle"))
    });
    g.bench_function("vene", |b| {
        b.iter(|| vene_kernels::softmax_last_dim(&s).expect("vene"))
    });
    g.finish();

    let x = randn(&[1024, 768]);
    let w = randn(&[768]);
    let bias = randn(&[768]);
    let mut g = c.benchmark_group("layer_norm");
    g.bench_function("candle", |b| {
        b.iter(|| candle_nn::ops::layer_norm(&x, &w, &bias, 1e-5).expect("candle"))
    });
    g.bench_function("vene", |b| {
        b.iter(|| vene_kernels::layer_norm(&x, &w, &bias, 1e-5).expect("vene"))
    });
    g.finish();
    let mut g = c.benchmark_group("rms_norm");
    g.bench_function("candle", |b| {
        b.iter(|| candle_nn::ops::rms_norm(&x, &w, 1e-5).expect("candle"))
    });
    g.bench_function("vene", |b| {
        b.iter(|| vene_kernels::rms_norm(&x, &w, 1e-5).expect("vene"))
    });
    g.finish();
}

fn attention(c: &mut Criterion) {
    let (b, h, t, d) = (8, 12, 128, 64);
    let (q, k, v) = (
        randn(&[b, h, t, d]),
        randn(&[b, h, t, d]),
        randn(&[b, h, t, d]),
    );
    let causal: Vec<u8> = (0..t * t).map(|i| u8::from(i % t <= i / t)).collect();
    let mask = Tensor::from_vec(causal, (1, 1, t, t), &Device::Cpu).expect("mask");
    let p = AttentionParams {
        scale: 0.125,
        softcap: None,
        mask: Some(&mask),
    };
    let mut g = c.benchmark_group("attention");
    g.bench_function("candle", |bn| {
        bn.iter(|| candle(|| vene_kernels::attention(&q, &k, &v, &p).expect("candle")))
    });
    g.bench_function("vene", |bn| {
        bn.iter(|| vene_kernels::attention(&q, &k, &v, &p).expect("fused"))
    });
    g.bench_function("vene_probs+values", |bn| {
        bn.iter(|| {
            let probs = vene_kernels::attention_probs(&q, &k, &p).expect("probs");
            vene_kernels::attention_values(&probs, &v).expect("values")
        })
    });
    g.finish();
}

fn linear(c: &mut Criterion) {
    let x = randn(&[1024, 768]);
    let w = randn(&[768, 3072]);
    let bias = randn(&[3072]);
    let run = || vene_kernels::linear(&x, &w, Some(&bias), WeightLayout::InOut);
    let mut g = c.benchmark_group("linear_bias");
    g.bench_function("candle", |b| b.iter(|| candle(|| run().expect("candle"))));
    g.bench_function("vene", |b| b.iter(|| run().expect("vene")));
    g.finish();
}

/// The products of short inputs (batch 1 x 32 tokens, one row for last-token logits or an
/// autoencoder at one position), where vene-kernels' own paths run instead of the gemm crate.
fn linear_short(c: &mut Criterion) {
    // (group, rows, weight shape, layout, bias)
    let cases: [(&str, usize, [usize; 2], WeightLayout, bool); 4] = [
        (
            "linear_32rows_c_fc",
            32,
            [768, 3072],
            WeightLayout::InOut,
            true,
        ),
        (
            "linear_32rows_c_proj_mlp",
            32,
            [3072, 768],
            WeightLayout::InOut,
            true,
        ),
        (
            "linear_1row_c_fc",
            1,
            [768, 3072],
            WeightLayout::InOut,
            true,
        ),
        (
            "linear_1row_lm_head",
            1,
            [50257, 768],
            WeightLayout::OutIn,
            false,
        ),
    ];
    for (name, rows, shape, layout, with_bias) in cases {
        let d_in = match layout {
            WeightLayout::InOut => shape[0],
            WeightLayout::OutIn => shape[1],
        };
        let d_out = shape[0] * shape[1] / d_in;
        let x = randn(&[rows, d_in]);
        let w = randn(&shape);
        let bias = with_bias.then(|| randn(&[d_out]));
        let run = || vene_kernels::linear(&x, &w, bias.as_ref(), layout);
        let mut g = c.benchmark_group(name);
        g.bench_function("candle", |b| b.iter(|| candle(|| run().expect("candle"))));
        g.bench_function("vene", |b| b.iter(|| run().expect("vene")));
        g.finish();
    }
}

criterion_group!(
    benches,
    activations,
    softmax_and_norms,
    attention,
    linear,
    linear_short
);
criterion_main!(benches);
