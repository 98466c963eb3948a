//! One test per on-disk format: each writes (or reads) the real layout and checks encode /
//! decode against hand-computed values.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use common::*;
use vene_autoencoder::{
    load_sae, load_sae_from_hub, load_sae_with, load_sparsify_dir, AutoencoderError, HubOptions,
    LoadOptions, SaeFormat,
};
use vene_testutil::fixtures;

const D: usize = 5;
const L: usize = 8;

struct Weights {
    w_enc: Mat, // [d, L]
    b_enc: Vec<f32>,
    w_dec: Mat, // [L, d]
    b_dec: Vec<f32>,
    thr: Vec<f32>,
}

fn weights(seed: u64) -> Weights {
    let mut r = rng(seed);
    Weights {
        w_enc: rand_mat(&mut r, D, L, 0.8),
        b_enc: rand_vec(&mut r, L, 0.2),
        w_dec: rand_mat(&mut r, L, D, 0.8),
        b_dec: rand_vec(&mut r, D, 0.3),
        thr: (0..L).map(|_| r.random_range(0.0..0.3)).collect(),
    }
}

use rand::Rng;

fn inputs(seed: u64) -> Mat {
    rand_mat(&mut rng(seed), 4, D, 1.5)
}

fn save(path: &Path, tensors: Vec<(&str, Tensor)>) {
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    candle_core::safetensors::save(&map, path).unwrap();
}

fn check(sae: &dyn vene_autoencoder::Autoencoder, x: &Mat, z_want: &Mat, w: &Weights) {
    let z = to_mat(&sae.encode(&t2(x)).unwrap());
    assert_close(&z, z_want, 1e-5, "latent");
    assert!(
        z_want.iter().flatten().any(|&v| v > 0.0),
        "some latent fires"
    );
    let recon = to_mat(&sae.decode(&t2(z_want)).unwrap());
    assert_close(&recon, &ref_dec(z_want, &w.w_dec, &w.b_dec), 1e-5, "decode");
    // Every loader's output moves: the copy computes in f64, answers f32 inputs in f32.
    let moved = sae
        .to(&candle_core::Device::Cpu, candle_core::DType::F64)
        .unwrap();
    assert_eq!(
        moved.placement().map(|p| p.1),
        Some(candle_core::DType::F64)
    );
    let z64 = moved.encode(&t2(x)).unwrap();
    assert_eq!(z64.dtype(), candle_core::DType::F32);
    assert_close(&to_mat(&z64), z_want, 1e-5, "latent after the move");
}

fn write_saelens(dir: &Path, w: &Weights, cfg: serde_json::Value, jump: bool) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    let mut t = vec![
        ("W_enc", t2(&w.w_enc)),
        ("b_enc", t1(&w.b_enc)),
        ("W_dec", t2(&w.w_dec)),
        ("b_dec", t1(&w.b_dec)),
    ];
    if jump {
        t.push(("threshold", t1(&w.thr)));
    }
    save(&dir.join("sae_weights.safetensors"), t);
}

#[test]
fn saelens_standard_jumprelu_topk() {
    let tmp = tempfile::tempdir().unwrap();
    let w = weights(1);
    let x = inputs(2);
    // standard, apply_b_dec_to_input = true
    let dir = tmp.path().join("std");
    let cfg = serde_json::json!({"architecture": "standard", "d_in": D, "d_sae": L,
        "apply_b_dec_to_input": true, "normalize_activations": "none",
        "metadata": {"hook_name": "blocks.8.hook_resid_pre"}});
    write_saelens(&dir, &w, cfg, false);
    let sae = load_sae(&dir).unwrap();
    assert_eq!(sae.format, SaeFormat::SaeLens);
    assert_eq!((sae.d_in, sae.d_sae, sae.layer), (D, L, Some(8)));
    assert_eq!(sae.hook_name.as_deref(), Some("blocks.8.hook_resid_pre"));
    let z = ref_relu(&ref_pre(&x, &w.w_enc, &w.b_enc, Some(&w.b_dec)));
    check(sae.autoencoder.as_ref(), &x, &z, &w);

    // jumprelu without b_dec subtraction
    let dir = tmp.path().join("jump");
    let cfg = serde_json::json!({"architecture": "jumprelu", "d_in": D, "d_sae": L,
        "apply_b_dec_to_input": false, "hook_name": "blocks.2.hook_resid_post", "hook_layer": 2});
    write_saelens(&dir, &w, cfg, true);
    let sae = load_sae(&dir).unwrap();
    assert_eq!(sae.layer, Some(2));
    let z = ref_jumprelu(&ref_pre(&x, &w.w_enc, &w.b_enc, None), &w.thr);
    check(sae.autoencoder.as_ref(), &x, &z, &w);

    // topk, k = 3
    let dir = tmp.path().join("topk");
    let cfg = serde_json::json!({"architecture": "topk", "d_in": D, "d_sae": L, "k": 3});
    write_saelens(&dir, &w, cfg, false);
    let sae = load_sae(&dir).unwrap();
    let z = ref_topk(&ref_pre(&x, &w.w_enc, &w.b_enc, Some(&w.b_dec)), 3);
    check(sae.autoencoder.as_ref(), &x, &z, &w);
}

#[test]
fn saelens_norm_scaling_is_folded() {
    let tmp = tempfile::tempdir().unwrap();
    let w = weights(3);
    let x = inputs(4);
    let s = 2.5f32;
    let cfg = serde_json::json!({"architecture": "standard", "d_in": D, "d_sae": L,
        "normalize_activations": "expected_average_only_in"});
    write_saelens(tmp.path(), &w, cfg, false);
    std::fs::write(
        tmp.path().join("activation_scaler.json"),
        r#"{"scaling_factor": 2.5}"#,
    )
    .unwrap();
    let sae = load_sae(tmp.path()).unwrap();
    assert_eq!(sae.norm_scaling_factor, Some(2.5));
    // SAELens with runtime scaling: encode(x * s), decode(z) / s.
    let xs: Mat = x
        .iter()
        .map(|r| r.iter().map(|v| v * s).collect())
        .collect();
    let z = ref_relu(&ref_pre(&xs, &w.w_enc, &w.b_enc, Some(&w.b_dec)));
    let got_z = to_mat(&sae.autoencoder.encode(&t2(&x)).unwrap());
    assert_close(&got_z, &z, 1e-5, "scaled latent");
    let recon: Mat = ref_dec(&z, &w.w_dec, &w.b_dec)
        .iter()
        .map(|r| r.iter().map(|v| v / s).collect())
        .collect();
    assert_close(
        &to_mat(&sae.autoencoder.decode(&t2(&z)).unwrap()),
        &recon,
        1e-5,
        "unscaled recon",
    );
    // An explicit factor wins over the file.
    let opts = LoadOptions {
        norm_scaling_factor: Some(1.0),
        ..Default::default()
    };
    let plain = load_sae_with(tmp.path(), &opts).unwrap();
    let z1 = ref_relu(&ref_pre(&x, &w.w_enc, &w.b_enc, Some(&w.b_dec)));
    assert_close(
        &to_mat(&plain.autoencoder.encode(&t2(&x)).unwrap()),
        &z1,
        1e-5,
        "factor 1",
    );
}

#[test]
fn saelens_unknown_architecture_and_bad_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let w = weights(5);
    let cfg = serde_json::json!({"architecture": "crosscoder", "d_in": D, "d_sae": L});
    write_saelens(tmp.path(), &w, cfg, false);
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::Unsupported { ref key, .. } if key == "architecture"),
        "{err}"
    );
    // d_sae in the config disagrees with b_enc.
    let cfg = serde_json::json!({"architecture": "standard", "d_in": D, "d_sae": L + 1});
    write_saelens(tmp.path(), &w, cfg, false);
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::ShapeMismatch { ref tensor, .. } if tensor == "b_enc"),
        "{err}"
    );
    // jumprelu without threshold
    let cfg = serde_json::json!({"architecture": "jumprelu", "d_in": D, "d_sae": L});
    write_saelens(tmp.path(), &w, cfg, false);
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::MissingTensor { ref tensor, .. } if tensor == "threshold"),
        "{err}"
    );
    assert!(err.to_string().contains("sae_weights.safetensors"), "{err}");
}

#[test]
fn gemmascope_npz() {
    let tmp = tempfile::tempdir().unwrap();
    let w = weights(6);
    let x = inputs(7);
    let dir = tmp.path().join("layer_20/width_16k/average_l0_71");
    std::fs::create_dir_all(&dir).unwrap();
    let (we, wd, be, bd, th) = (
        t2(&w.w_enc),
        t2(&w.w_dec),
        t1(&w.b_enc),
        t1(&w.b_dec),
        t1(&w.thr),
    );
    Tensor::write_npz(
        &[
            ("W_enc", &we),
            ("W_dec", &wd),
            ("b_enc", &be),
            ("b_dec", &bd),
            ("threshold", &th),
        ],
        dir.join("params.npz"),
    )
    .unwrap();
    let sae = load_sae(&dir).unwrap();
    assert_eq!(sae.format, SaeFormat::GemmaScope);
    assert_eq!((sae.d_in, sae.d_sae, sae.layer), (D, L, Some(20)));
    let z = ref_jumprelu(&ref_pre(&x, &w.w_enc, &w.b_enc, None), &w.thr);
    check(sae.autoencoder.as_ref(), &x, &z, &w);
}

fn write_sparsify(dir: &Path, w: &Weights, k: usize, w_dec_transposed: bool) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = serde_json::json!({"expansion_factor": 32, "normalize_decoder": true,
        "num_latents": L, "k": k, "multi_topk": false, "skip_connection": false, "d_in": D});
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    let w_dec = if w_dec_transposed {
        t2(&transpose(&w.w_dec))
    } else {
        t2(&w.w_dec)
    };
    save(
        &dir.join("sae.safetensors"),
        vec![
            ("encoder.weight", t2(&transpose(&w.w_enc))), // [L, d]
            ("encoder.bias", t1(&w.b_enc)),
            ("W_dec", w_dec),
            ("b_dec", t1(&w.b_dec)),
        ],
    );
}

#[test]
fn sparsify_topk_per_hookpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let w = weights(8);
    let x = inputs(9);
    write_sparsify(&tmp.path().join("layers.3"), &w, 2, false);
    // A checkpoint written by a tool that stored W_dec the other way round: the shapes decide.
    write_sparsify(&tmp.path().join("layers.4.mlp"), &w, 3, true);
    let sae = load_sae(tmp.path().join("layers.3")).unwrap();
    assert_eq!(sae.format, SaeFormat::Sparsify);
    assert_eq!(sae.hook_name.as_deref(), Some("layers.3"));
    assert_eq!(sae.layer, Some(3));
    let z = ref_topk(&ref_pre(&x, &w.w_enc, &w.b_enc, Some(&w.b_dec)), 2);
    check(sae.autoencoder.as_ref(), &x, &z, &w);

    let all = load_sparsify_dir(tmp.path(), &LoadOptions::default()).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].hook_name.as_deref(), Some("layers.4.mlp"));
    let z = ref_topk(&ref_pre(&x, &w.w_enc, &w.b_enc, Some(&w.b_dec)), 3);
    check(all[1].autoencoder.as_ref(), &x, &z, &w);
}

#[test]
fn dictionary_learning_ae_pt() {
    let dir = fixtures().join("sae/dictionary_learning");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("weights.json")).unwrap()).unwrap();
    let mat = |k: &str| -> Mat { serde_json::from_value(json[k].clone()).unwrap() };
    let vec = |k: &str| -> Vec<f32> { serde_json::from_value(json[k].clone()).unwrap() };
    let (enc_w, enc_b, dec_w, bias) = (
        mat("encoder.weight"),
        vec("encoder.bias"),
        mat("decoder.weight"),
        vec("bias"),
    );
    let sae = load_sae(&dir).unwrap();
    assert_eq!(sae.format, SaeFormat::DictionaryLearning);
    assert_eq!((sae.d_in, sae.d_sae, sae.layer), (6, 10, Some(3)));
    assert_eq!(sae.hook_name.as_deref(), Some("resid_post_layer_3"));
    let x: Mat = rand_mat(&mut rng(10), 3, 6, 2.0);
    let z = ref_relu(&ref_pre(&x, &transpose(&enc_w), &enc_b, Some(&bias)));
    assert!(z.iter().flatten().any(|&v| v > 0.0));
    let r = ref_dec(&z, &transpose(&dec_w), &bias);
    let (recon, latent) = sae.autoencoder.forward(&t2(&x), true).unwrap();
    assert_close(&to_mat(&latent.unwrap()), &z, 1e-5, "latent");
    assert_close(&to_mat(&recon), &r, 1e-5, "recon");
    let moved = sae
        .autoencoder
        .to(&candle_core::Device::Cpu, candle_core::DType::F64)
        .unwrap();
    let (recon, _) = moved.forward(&t2(&x), false).unwrap();
    assert_close(&to_mat(&recon), &r, 1e-5, "recon after the move");
}

#[test]
fn pyvene_safetensors_state_dict() {
    let tmp = tempfile::tempdir().unwrap();
    let w = weights(11);
    let x = inputs(12);
    let path = tmp.path().join("ae.safetensors");
    save(
        &path,
        vec![
            ("autoencoder.encoder.0.weight", t2(&transpose(&w.w_enc))),
            ("autoencoder.encoder.0.bias", t1(&w.b_enc)),
            ("autoencoder.decoder.0.weight", t2(&transpose(&w.w_dec))),
            ("autoencoder.decoder.0.bias", t1(&w.b_dec)),
        ],
    );
    let sae = load_sae(&path).unwrap();
    assert_eq!(sae.format, SaeFormat::Pyvene);
    let z = ref_relu(&ref_pre(&x, &w.w_enc, &w.b_enc, Some(&w.b_dec)));
    check(sae.autoencoder.as_ref(), &x, &z, &w);
}

#[test]
fn hub_cache_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let w = weights(13);
    let x = inputs(14);
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let repo = tmp
        .path()
        .join("models--jbloom--GPT2-Small-SAEs-Reformatted");
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), format!("{sha}\n")).unwrap();
    let folder = repo
        .join("snapshots")
        .join(sha)
        .join("blocks.0.hook_resid_pre");
    let cfg = serde_json::json!({"architecture": "standard", "d_in": D, "d_sae": L,
        "hook_name": "blocks.0.hook_resid_pre"});
    write_saelens(&folder, &w, cfg, false);
    let opts = HubOptions {
        cache_dir: Some(tmp.path().to_path_buf()),
        offline: true,
        ..Default::default()
    };
    let sae = load_sae_from_hub(
        "jbloom/GPT2-Small-SAEs-Reformatted",
        "blocks.0.hook_resid_pre",
        &opts,
    )
    .unwrap();
    assert_eq!((sae.format, sae.layer), (SaeFormat::SaeLens, Some(0)));
    // cfg.json does not say whether a BOS was prepended
    assert_eq!(sae.prepend_bos, None);
    let z = ref_relu(&ref_pre(&x, &w.w_enc, &w.b_enc, Some(&w.b_dec)));
    check(sae.autoencoder.as_ref(), &x, &z, &w);
    let err = load_sae_from_hub(
        "jbloom/GPT2-Small-SAEs-Reformatted",
        "blocks.1.hook_resid_pre",
        &opts,
    )
    .unwrap_err();
    assert!(matches!(err, AutoencoderError::Hub(_)), "{err}");
}

#[test]
fn saelens_prepend_bos_is_read_from_cfg() {
    let w = weights(21);
    for (cfg_extra, want) in [
        (serde_json::json!({"prepend_bos": true}), Some(true)),
        (serde_json::json!({"prepend_bos": false}), Some(false)),
        (
            serde_json::json!({"metadata": {"prepend_bos": false, "hook_name": "blocks.2.hook_resid_pre"}}),
            Some(false),
        ),
        (serde_json::json!({"prepend_bos": "yes"}), None),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let mut cfg = serde_json::json!({"architecture": "standard", "d_in": D, "d_sae": L});
        for (k, v) in cfg_extra.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        write_saelens(tmp.path(), &w, cfg.clone(), false);
        let sae = vene_autoencoder::load_sae(tmp.path()).unwrap();
        assert_eq!(sae.prepend_bos, want, "{cfg}");
    }
}
