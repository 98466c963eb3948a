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
