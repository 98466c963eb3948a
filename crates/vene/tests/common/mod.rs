//! Shared helpers of the facade's tests: fixture models (oracle tensors and comparisons come
//! from vene-testutil, re-exported here).
#![allow(dead_code)]

use candle_core::DType;
use vene::autoencoder::AutoencoderLayer;
use vene::models::Model;
use vene::{get_intervenable_with_autoencoder, IntervenableModel};
// Each test binary uses a different subset.
#[allow(unused_imports)]
pub use vene_testutil::{
    assert_intervened, get, max_abs, max_abs_diff, oracle, PYVENE_FIXTURES as FIXTURES,
};

/// The fixture model `tiny-{name}`, on the tests' device (`VENE_TEST_DEVICE`, default CPU).
pub fn model(name: &str) -> Model {
    let dir = format!("{FIXTURES}/tiny-{name}");
    Model::from_dir(&dir, DType::F32, &vene_testutil::device()).expect("fixture model loads")
}

/// GPT-2 with the fixture autoencoder of case `ae_idx` on layer 1's block output, latents
/// [3, 7, 11, 20, 31].
pub fn gpt2_ae_idx_model() -> IntervenableModel<Model> {
    let o = oracle("gpt2");
    let t = |n: &str| get(&o, &format!("gpt2.ae_idx.autoencoder.{n}"));
    let layer = AutoencoderLayer::from_tensors(
        t("encoder.0.weight"),
        t("encoder.0.bias"),
        t("decoder.0.weight"),
        t("decoder.0.bias"),
    )
    .unwrap();
    let mut im =
        get_intervenable_with_autoencoder(model("gpt2"), layer, vec![3, 7, 11, 20, 31], 1).unwrap();
    im.to(&vene_testutil::device(), DType::F32).unwrap();
    im
}

/// A synthetic DAS task on a random tiny GPT-2 (vocab 16, width 16, 2 layers): the label of
/// each example is the source's token at position 2, to be predicted at the base's last
/// position 4 after an interchange at position 2 (source) -> 4 (base). Returns the model and
/// `n` examples as (base ids, source ids, labels).
pub fn das_task(
    n: usize,
    seed: u64,
) -> (
    Model,
    candle_core::Tensor,
    candle_core::Tensor,
    candle_core::Tensor,
) {
    use candle_core::{Device, Tensor};
    let dev = Device::Cpu;
    // Seeded weights (the same on every run: with candle's unseeded random init the
    // untrained IIA varied from run to run, and a lucky draw made "IIA rises by 0.3" fail).
    let (model, vars) =
        Model::seeded_gpt2(&vene::models::Gpt2Config::tiny(16, 16, 2, 2), seed, &dev).unwrap();
    // GPT-2's init (std 0.02) gives near-uniform logits: scale the tied embedding up so that
    // the token identity in the residual stream shows in the logits.
    for (name, var) in vars.data().lock().unwrap().iter() {
        if name.contains("wte") {
            var.set(&(var.as_tensor() * 25.0).unwrap()).unwrap();
        }
    }
    let t = 5usize;
    let mut s = seed;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) % 16) as u32
    };
    let base: Vec<u32> = (0..n * t).map(|_| next()).collect();
    let src: Vec<u32> = (0..n * t).map(|_| next()).collect();
    let labels: Vec<u32> = (0..n).map(|i| src[i * t + 2]).collect();
    (
        model,
        Tensor::from_vec(base, (n, t), &dev).unwrap(),
        Tensor::from_vec(src, (n, t), &dev).unwrap(),
        Tensor::from_vec(labels, n, &dev).unwrap(),
    )
}
