//! pyvene's own numbers: `recon_latent` / `recon_output` of the fixture autoencoders, and the
//! `intkey_*.bin` file pyvene saved.

mod common;

use std::collections::HashMap;

use candle_core::Tensor;
use common::{assert_close, ref_dec, ref_pre, ref_relu, to_mat, transpose};
use vene_autoencoder::{load_sae, Autoencoder, AutoencoderLayer, SaeFormat};
use vene_testutil::{fixtures, oracle};

fn check_case(model: &str, case: &str) {
    let o = oracle(model);
    let prefix = format!("{model}.{case}.autoencoder.");
    let ae = AutoencoderLayer::from_state_dict(&o, &prefix, "oracle").unwrap();
    assert_eq!((ae.input_dim(), ae.latent_dim()), (16, 32));
    let x = &o[&format!("{model}.{case}.ae_in_base")];
    let (recon, latent) = ae.forward(x, true).unwrap();
    let want_latent = to_mat(&o[&format!("{model}.{case}.recon_latent")]);
    let want_recon = to_mat(&o[&format!("{model}.{case}.recon_output")]);
    assert_close(
        &to_mat(&latent.unwrap()),
        &want_latent,
        1e-5,
        "recon_latent",
    );
    assert_close(&to_mat(&recon), &want_recon, 1e-5, "recon_output");
    // encode / decode separately agree too, and the latent is not trivial.
    assert_close(
        &to_mat(&ae.encode(x).unwrap()),
        &want_latent,
        1e-5,
        "encode",
    );
    assert!(want_latent.iter().flatten().any(|&v| v > 0.0));
    // encode_selected computes the same columns.
    let dims = [3usize, 7, 11, 20, 31];
    let sel = to_mat(&ae.encode_selected(x, &dims).unwrap());
    let want_sel: Vec<Vec<f32>> = want_latent
        .iter()
        .map(|r| dims.iter().map(|&d| r[d]).collect())
        .collect();
    assert_close(&sel, &want_sel, 1e-5, "encode_selected");
}

#[test]
fn gpt2_ae_idx() {
    check_case("gpt2", "ae_idx");
}

#[test]
fn gpt2_ae_default_dim() {
    check_case("gpt2", "ae_default_dim");
}

#[test]
fn llama_ae_idx() {
    check_case("llama", "ae_idx");
}

#[test]
fn llama_ae_default_dim() {
    check_case("llama", "ae_default_dim");
}

#[test]
fn loads_pyvene_intkey_bin() {
    let dir = fixtures().join("pyvene/saved_ae_intervenable");
    let sae = load_sae(&dir).unwrap();
    assert_eq!(sae.format, SaeFormat::Pyvene);
    assert_eq!((sae.d_in, sae.d_sae), (16, 32));
    assert_eq!(sae.interchange_dim, Some(vec![1, 2, 3]));
    // Expected values by hand from the raw tensors of the same file.
    let raw: HashMap<String, Tensor> = candle_core::pickle::read_all(&sae.weights_path)
        .unwrap()
        .into_iter()
        .collect();
    let w_enc = to_mat(&raw["autoencoder.encoder.0.weight"]); // [L, d]
    let b_enc = raw["autoencoder.encoder.0.bias"].to_vec1::<f32>().unwrap();
    let w_dec = to_mat(&raw["autoencoder.decoder.0.weight"]); // [d, L]
    let b_dec = raw["autoencoder.decoder.0.bias"].to_vec1::<f32>().unwrap();
    let x: Vec<Vec<f32>> = (0..3)
        .map(|i| {
            (0..16)
                .map(|k| ((i * 16 + k) as f32 * 0.37).sin())
                .collect()
        })
        .collect();
    let z = ref_relu(&ref_pre(&x, &transpose(&w_enc), &b_enc, Some(&b_dec)));
    let r = ref_dec(&z, &transpose(&w_dec), &b_dec);
    let (recon, latent) = sae.autoencoder.forward(&common::t2(&x), true).unwrap();
    assert_close(&to_mat(&latent.unwrap()), &z, 1e-5, "latent");
    assert_close(&to_mat(&recon), &r, 1e-5, "recon");
}
