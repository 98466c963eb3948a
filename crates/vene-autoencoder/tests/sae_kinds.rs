//! The SAE kinds beyond ReLU / JumpReLU / TopK, each loaded from files in its library's own
//! layout and checked against math written out here from the same numbers: gated SAEs
//! (SAELens, dictionary_learning), BatchTopK and Matryoshka SAEs (dictionary_learning),
//! SAELens input normalisation (`layer_norm`, `constant_norm_rescale`), skip connections and
//! transcoders (sparsify, SAELens). Also: the save round trip is bit-exact, and bad files give
//! typed errors naming the tensor.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::*;
use vene_autoencoder::{
    autoencoder_from_state, load_sae, read_safetensors, write_safetensors, Autoencoder,
    AutoencoderError, InputNormalization, LoadedSae, LAYER_NORM_EPS,
};

const D: usize = 5;
const L: usize = 8;

fn save(path: &Path, tensors: Vec<(&str, Tensor)>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(n, t)| (n.to_string(), t))
        .collect();
    candle_core::safetensors::save(&map, path).unwrap();
}

fn write_saelens(dir: &Path, cfg: serde_json::Value, tensors: Vec<(&str, Tensor)>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    save(&dir.join("sae_weights.safetensors"), tensors);
}

fn inputs(seed: u64, rows: usize, width: usize) -> Mat {
    rand_mat(&mut rng(seed), rows, width, 1.5)
}

/// `x @ w` for `w` `[in, out]`, plus `b`, in f64.
fn lin(x: &Mat, w_in_out: &Mat, b: &[f32]) -> Mat {
    ref_pre(x, w_in_out, b, None)
}

fn sub_row(x: &Mat, v: &[f32]) -> Mat {
    x.iter()
        .map(|r| r.iter().zip(v).map(|(a, b)| a - b).collect())
        .collect()
}

fn add(a: &Mat, b: &Mat) -> Mat {
    a.iter()
        .zip(b)
        .map(|(r, s)| r.iter().zip(s).map(|(x, y)| x + y).collect())
        .collect()
}

fn zeros(n: usize) -> Vec<f32> {
    vec![0.0; n]
}

/// Gated: `1[h + b_gate > 0] * relu(h * exp(r_mag) + b_mag)`, `h = x_c @ W_enc` (SAELens's
/// magnitude path `x_c @ (W_enc * exp(r_mag)) + b_mag`, written that way).
fn ref_gated(xc: &Mat, w_enc: &Mat, b_gate: &[f32], r_mag: &[f32], b_mag: &[f32]) -> Mat {
    let h = lin(xc, w_enc, &zeros(b_gate.len()));
    let w_mag: Mat = w_enc
        .iter()
        .map(|r| r.iter().zip(r_mag).map(|(w, r)| w * r.exp()).collect())
        .collect();
    let mag = lin(xc, &w_mag, b_mag);
    h.iter()
        .zip(&mag)
        .map(|(hr, mr)| {
            hr.iter()
                .zip(mr)
                .zip(b_gate)
                .map(|((h, m), g)| if h + g > 0.0 { m.max(0.0) } else { 0.0 })
                .collect()
        })
        .collect()
}

/// SAELens `layer_norm`: `(mu, std)` per row, std unbiased.
fn ln_stats(x: &Mat) -> Vec<(f32, f32)> {
    x.iter()
        .map(|r| {
            let n = r.len() as f64;
            let mu = r.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = r.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / (n - 1.0);
            (mu as f32, var.sqrt() as f32)
        })
        .collect()
}

fn check_encode_decode(sae: &dyn Autoencoder, x: &Mat, z_want: &Mat, y_want: &Mat, what: &str) {
    let xt = t2(x);
    let z = sae.encode(&xt).unwrap();
    assert_close(&to_mat(&z), z_want, 1e-5, &format!("{what}: encode"));
    assert!(
        z_want.iter().flatten().any(|&v| v > 0.0) && z_want.iter().flatten().any(|&v| v == 0.0),
        "{what}: the test needs active and inactive latents"
    );
    let (y, z2) = sae.forward(&xt, true).unwrap();
    assert_close(&to_mat(&y), y_want, 1e-5, &format!("{what}: forward"));
    assert_close(
        &to_mat(&z2.unwrap()),
        z_want,
        1e-5,
        &format!("{what}: latent"),
    );
    let y2 = sae.decode_for(&z, &xt).unwrap();
    assert_close(&to_mat(&y2), y_want, 1e-5, &format!("{what}: decode_for"));
    // encode_selected = those columns of encode
    let dims = [6usize, 1, 3];
    let sel = to_mat(&sae.encode_selected(&xt, &dims).unwrap());
    let want: Mat = z_want
        .iter()
        .map(|r| dims.iter().map(|&j| r[j]).collect())
        .collect();
    assert_close(&sel, &want, 1e-5, &format!("{what}: encode_selected"));
}

/// The state round trip, through safetensors bytes and the settings as JSON text: the same
/// kind, the same tensors bit for bit, and the same outputs bit for bit.
fn check_round_trip(sae: &dyn Autoencoder, x: &Mat, kind: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let state = sae.state().unwrap().expect("savable");
    assert_eq!(state.kind, kind);
    let map: HashMap<String, Tensor> = state.tensors.iter().cloned().collect();
    let path = tmp.path().join("ae.safetensors");
    write_safetensors(&map, &path).unwrap();
    let back_map = read_safetensors(&path, &Device::Cpu).unwrap();
    let settings: serde_json::Value = serde_json::from_str(&state.settings.to_string()).unwrap();
    let back = autoencoder_from_state(&state.kind, &settings, &back_map).unwrap();
    let again = back.state().unwrap().unwrap();
    assert_eq!(again.kind, state.kind);
    assert_eq!(again.settings, state.settings, "{kind}");
    assert_eq!(again.tensors.len(), state.tensors.len());
    for ((n1, a), (n2, b)) in state.tensors.iter().zip(&again.tensors) {
        assert_eq!(n1, n2);
        assert_eq!(a.dims(), b.dims(), "{kind}: {n1}");
        assert_eq!(bits(a), bits(b), "{kind}: {n1}");
    }
    assert_eq!(
        (back.input_dim(), back.latent_dim(), back.output_dim()),
        (sae.input_dim(), sae.latent_dim(), sae.output_dim())
    );
    let xt = t2(x);
    let (y1, z1) = sae.forward(&xt, true).unwrap();
    let (y2, z2) = back.forward(&xt, true).unwrap();
    assert_eq!(bits(&y1), bits(&y2), "{kind}: reconstruction");
    assert_eq!(bits(&z1.unwrap()), bits(&z2.unwrap()), "{kind}: latent");
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

struct Gated {
    w_enc: Mat,
    b_gate: Vec<f32>,
    r_mag: Vec<f32>,
    b_mag: Vec<f32>,
    w_dec: Mat,
    b_dec: Vec<f32>,
}

fn gated_weights(seed: u64) -> Gated {
    let r = &mut rng(seed);
    Gated {
        w_enc: rand_mat(r, D, L, 0.8),
        b_gate: rand_vec(r, L, 0.3),
        r_mag: rand_vec(r, L, 0.5),
        b_mag: rand_vec(r, L, 0.3),
        w_dec: rand_mat(r, L, D, 0.8),
        b_dec: rand_vec(r, D, 0.3),
    }
}

#[test]
fn saelens_gated() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gated_weights(1);
    let x = inputs(2, 6, D);
    let cfg = serde_json::json!({"architecture": "gated", "d_in": D, "d_sae": L,
        "apply_b_dec_to_input": true, "normalize_activations": "none",
        "metadata": {"hook_name": "blocks.2.hook_resid_pre"}});
    write_saelens(
        tmp.path(),
        cfg,
        vec![
            ("W_enc", t2(&g.w_enc)),
            ("b_gate", t1(&g.b_gate)),
            ("r_mag", t1(&g.r_mag)),
            ("b_mag", t1(&g.b_mag)),
            ("W_dec", t2(&g.w_dec)),
            ("b_dec", t1(&g.b_dec)),
        ],
    );
    let s = load_sae(tmp.path()).unwrap();
    assert_eq!(s.architecture, "gated");
    assert_eq!((s.d_in, s.d_sae, s.d_out), (D, L, D));
    assert_eq!(s.output_hook_name, None);
    let z = ref_gated(
        &sub_row(&x, &g.b_dec),
        &g.w_enc,
        &g.b_gate,
        &g.r_mag,
        &g.b_mag,
    );
    // the gate closes some latents whose magnitude is positive: both paths matter
    let mag_only = ref_gated(
        &sub_row(&x, &g.b_dec),
        &g.w_enc,
        &[1e9; L],
        &g.r_mag,
        &g.b_mag,
    );
    assert!(mag_only
        .iter()
        .flatten()
        .zip(z.iter().flatten())
        .any(|(m, z)| *m > 0.0 && *z == 0.0));
    let y = lin(&z, &g.w_dec, &g.b_dec);
    check_encode_decode(s.autoencoder.as_ref(), &x, &z, &y, "saelens gated");
    let rows = s.autoencoder.decoder_rows(&[2, 5]).unwrap().unwrap();
    assert_close(
        &to_mat(&rows),
        &vec![g.w_dec[2].clone(), g.w_dec[5].clone()],
        0.0,
        "rows",
    );
    check_round_trip(s.autoencoder.as_ref(), &x, "gated");

    // apply_b_dec_to_input = false
    let cfg = serde_json::json!({"architecture": "gated", "d_in": D, "d_sae": L,
        "apply_b_dec_to_input": false});
    std::fs::write(tmp.path().join("cfg.json"), cfg.to_string()).unwrap();
    let s = load_sae(tmp.path()).unwrap();
    let z = ref_gated(&x, &g.w_enc, &g.b_gate, &g.r_mag, &g.b_mag);
    let y = lin(&z, &g.w_dec, &g.b_dec);
    check_encode_decode(s.autoencoder.as_ref(), &x, &z, &y, "gated, no b_dec");
    check_round_trip(s.autoencoder.as_ref(), &x, "gated");
}

/// The numbers of a fixture's weights.json.
fn fixture_weights(name: &str) -> serde_json::Value {
    let path = vene_testutil::fixtures().join(format!("sae/{name}/weights.json"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn jm(v: &serde_json::Value, key: &str) -> Mat {
    serde_json::from_value(v[key].clone()).unwrap()
}

fn jv(v: &serde_json::Value, key: &str) -> Vec<f32> {
    serde_json::from_value(v[key].clone()).unwrap()
}

fn fixture_dir(name: &str) -> std::path::PathBuf {
    vene_testutil::fixtures().join(format!("sae/{name}"))
}

#[test]
fn dictionary_learning_gated_autoencoder() {
    let w = fixture_weights("dictionary_learning_gated");
    let s = load_sae(fixture_dir("dictionary_learning_gated")).unwrap();
    assert_eq!(s.architecture, "gated");
    assert_eq!((s.d_in, s.d_sae, s.layer), (4, 6, Some(2)));
    assert_eq!(s.hook_name.as_deref(), Some("resid_post_layer_2"));
    let x = inputs(3, 8, 4);
    // x_enc = encoder(x - decoder_bias); torch nn.Linear: x @ W^T
    let enc = transpose(&jm(&w, "encoder.weight"));
    let dec = transpose(&jm(&w, "decoder.weight"));
    let bias = jv(&w, "decoder_bias");
    let z = ref_gated(
        &sub_row(&x, &bias),
        &enc,
        &jv(&w, "gate_bias"),
        &jv(&w, "r_mag"),
        &jv(&w, "mag_bias"),
    );
    let y = lin(&z, &dec, &bias);
    check_encode_decode_dims(
        s.autoencoder.as_ref(),
        &x,
        &z,
        &y,
        "dictionary_learning gated",
    );
    check_round_trip(s.autoencoder.as_ref(), &x, "gated");
}

/// [`check_encode_decode`] for fixtures of other widths (selected dims below 4).
fn check_encode_decode_dims(sae: &dyn Autoencoder, x: &Mat, z_want: &Mat, y_want: &Mat, w: &str) {
    let xt = t2(x);
    let z = sae.encode(&xt).unwrap();
    assert_close(&to_mat(&z), z_want, 1e-5, &format!("{w}: encode"));
    assert!(
        z_want.iter().flatten().any(|&v| v > 0.0) && z_want.iter().flatten().any(|&v| v == 0.0),
        "{w}: the test needs active and inactive latents"
    );
    let (y, _) = sae.forward(&xt, false).unwrap();
    assert_close(&to_mat(&y), y_want, 1e-5, &format!("{w}: forward"));
    let dims = [3usize, 0];
    let sel = to_mat(&sae.encode_selected(&xt, &dims).unwrap());
    let want: Mat = z_want
        .iter()
        .map(|r| dims.iter().map(|&j| r[j]).collect())
        .collect();
    assert_close(&sel, &want, 1e-5, &format!("{w}: encode_selected"));
}

/// BatchTopK at inference (dictionary_learning `encode(use_threshold=True)`):
/// `r * (r > threshold)`, `r = relu(pre)`.
fn ref_threshold(pre: &Mat, thr: f32) -> (Mat, usize) {
    let mut cut = 0;
    let z = pre
        .iter()
        .map(|r| {
            r.iter()
                .map(|&v| {
                    let a = v.max(0.0);
                    if a > 0.0 && a <= thr {
                        cut += 1;
                    }
                    if a > thr {
                        a
                    } else {
                        0.0
                    }
                })
                .collect()
        })
        .collect();
    (z, cut)
}

#[test]
fn dictionary_learning_batchtopk_uses_its_threshold() {
    let w = fixture_weights("dictionary_learning_batchtopk");
    let s = load_sae(fixture_dir("dictionary_learning_batchtopk")).unwrap();
    assert_eq!(s.architecture, "batchtopk");
    assert_eq!((s.d_in, s.d_sae), (4, 6));
    let x = inputs(4, 8, 4);
    let b_dec = jv(&w, "b_dec");
    let pre = ref_pre(
        &x,
        &transpose(&jm(&w, "encoder.weight")),
        &jv(&w, "encoder.bias"),
        Some(&b_dec),
    );
    let thr: f32 = serde_json::from_value(w["threshold"].clone()).unwrap();
    let (z, cut) = ref_threshold(&pre, thr);
    assert!(
        cut > 0,
        "some positive latent must fall under the threshold"
    );
    // Not a per-row top k: rows keep more or fewer than k = 2 latents.
    assert!(z
        .iter()
        .any(|r| r.iter().filter(|&&v| v > 0.0).count() != 2));
    let y = lin(&z, &transpose(&jm(&w, "decoder.weight")), &b_dec);
    check_encode_decode_dims(s.autoencoder.as_ref(), &x, &z, &y, "batchtopk");
    check_round_trip(s.autoencoder.as_ref(), &x, "jumprelu");

    // The same ae.pt is AutoEncoderTopK's layout: with a config that does not name the
    // class, it loads as per-row TopK, `k` from the config (the int32 buffer is unreadable).
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir("dictionary_learning_batchtopk").join("ae.pt"),
        tmp.path().join("ae.pt"),
    )
    .unwrap();
    let err = load_sae(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("`k`") && err.contains("trainer.k"), "{err}");
    let cfg = serde_json::json!({"trainer": {"k": 2, "activation_dim": 4}});
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let s = load_sae(tmp.path()).unwrap();
    assert_eq!(s.architecture, "topk");
    let z = to_mat(&s.autoencoder.encode(&t2(&x)).unwrap());
    assert_close(&z, &ref_topk(&pre, 2), 1e-5, "topk without dict_class");
}

#[test]
fn dictionary_learning_matryoshka() {
    let w = fixture_weights("dictionary_learning_matryoshka");
    let s = load_sae(fixture_dir("dictionary_learning_matryoshka")).unwrap();
    assert_eq!(s.architecture, "matryoshka_batchtopk");
    let x = inputs(5, 8, 4);
    let b_dec = jv(&w, "b_dec");
    // plain parameters: W_enc [d, L], W_dec [L, d]
    let pre = ref_pre(&x, &jm(&w, "W_enc"), &jv(&w, "b_enc"), Some(&b_dec));
    let thr: f32 = serde_json::from_value(w["threshold"].clone()).unwrap();
    let (z, cut) = ref_threshold(&pre, thr);
    assert!(
        cut > 0,
        "some positive latent must fall under the threshold"
    );
    let y = lin(&z, &jm(&w, "W_dec"), &b_dec);
    check_encode_decode_dims(s.autoencoder.as_ref(), &x, &z, &y, "matryoshka");
    check_round_trip(s.autoencoder.as_ref(), &x, "jumprelu");
}

#[test]
fn dictionary_learning_config_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture_dir("dictionary_learning_gated");
    std::fs::copy(src.join("ae.pt"), tmp.path().join("ae.pt")).unwrap();
    // dict_size disagrees with the gate bias
    let cfg = serde_json::json!({"trainer": {"dict_class": "GatedAutoEncoder",
        "activation_dim": 4, "dict_size": 7}});
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::ShapeMismatch { ref tensor, .. } if tensor == "gate_bias"),
        "{err}"
    );
    // a class this loader does not know
    let cfg = serde_json::json!({"trainer": {"dict_class": "CrossCoder"}});
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::Unsupported { ref value, .. } if value == "CrossCoder"),
        "{err}"
    );
    // the config says BatchTopK but the file is a gated SAE: the missing tensor is named
    let cfg = serde_json::json!({"trainer": {"dict_class": "BatchTopKSAE"}});
    std::fs::write(tmp.path().join("config.json"), cfg.to_string()).unwrap();
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::MissingTensor { ref tensor, .. } if tensor == "encoder.bias"),
        "{err}"
    );
}

struct Plain {
    w_enc: Mat,
    b_enc: Vec<f32>,
    w_dec: Mat,
    b_dec: Vec<f32>,
}

fn plain_weights(seed: u64, d_in: usize, d_out: usize) -> Plain {
    let r = &mut rng(seed);
    Plain {
        w_enc: rand_mat(r, d_in, L, 0.8),
        b_enc: rand_vec(r, L, 0.3),
        w_dec: rand_mat(r, L, d_out, 0.8),
        b_dec: rand_vec(r, d_out, 0.3),
    }
}

fn plain_tensors(p: &Plain) -> Vec<(&'static str, Tensor)> {
    vec![
        ("W_enc", t2(&p.w_enc)),
        ("b_enc", t1(&p.b_enc)),
        ("W_dec", t2(&p.w_dec)),
        ("b_dec", t1(&p.b_dec)),
    ]
}

#[test]
fn saelens_layer_norm() {
    let tmp = tempfile::tempdir().unwrap();
    let p = plain_weights(6, D, D);
    // offset rows, so that the mean matters
    let x: Mat = inputs(7, 6, D)
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.into_iter().map(|v| v * 3.0 + i as f32).collect())
        .collect();
    let cfg = serde_json::json!({"architecture": "standard", "d_in": D, "d_sae": L,
        "apply_b_dec_to_input": true, "normalize_activations": "layer_norm"});
    write_saelens(tmp.path(), cfg, plain_tensors(&p));
    let s = load_sae(tmp.path()).unwrap();
    let stats = ln_stats(&x);
    let xn: Mat = x
        .iter()
        .zip(&stats)
        .map(|(r, &(mu, sd))| {
            r.iter()
                .map(|&v| (v - mu) / (sd + LAYER_NORM_EPS as f32))
                .collect()
        })
        .collect();
    let z = ref_relu(&ref_pre(&xn, &p.w_enc, &p.b_enc, Some(&p.b_dec)));
    let y_norm = lin(&z, &p.w_dec, &p.b_dec);
    let y: Mat = y_norm
        .iter()
        .zip(&stats)
        .map(|(r, &(mu, sd))| r.iter().map(|&v| v * sd + mu).collect())
        .collect();
    let sae = s.autoencoder.as_ref();
    check_encode_decode(sae, &x, &z, &y, "layer_norm");
    // decode alone is the normalised part; the scale is the row's std
    let zt = sae.encode(&t2(&x)).unwrap();
    assert_close(&to_mat(&sae.decode(&zt).unwrap()), &y_norm, 1e-5, "decode");
    let scale = sae.decode_scale_for(&t2(&x)).unwrap().unwrap();
    let want: Mat = stats.iter().map(|&(_, sd)| vec![sd]).collect();
    assert_close(&to_mat(&scale), &want, 1e-5, "scale");
    check_round_trip(sae, &x, "relu");
    let state = sae.state().unwrap().unwrap();
    assert_eq!(state.settings["normalize_activations"], "layer_norm");

    // jumprelu with layer_norm, through the same path
    let thr = vec![0.2f32; L];
    let cfg = serde_json::json!({"architecture": "jumprelu", "d_in": D, "d_sae": L,
        "apply_b_dec_to_input": false, "normalize_activations": "layer_norm"});
    let mut t = plain_tensors(&p);
    t.push(("threshold", t1(&thr)));
    write_saelens(tmp.path(), cfg, t);
    let s = load_sae(tmp.path()).unwrap();
    let z = ref_jumprelu(&ref_pre(&xn, &p.w_enc, &p.b_enc, None), &thr);
    let y: Mat = lin(&z, &p.w_dec, &p.b_dec)
        .iter()
        .zip(&stats)
        .map(|(r, &(mu, sd))| r.iter().map(|&v| v * sd + mu).collect())
        .collect();
    check_encode_decode(s.autoencoder.as_ref(), &x, &z, &y, "jumprelu layer_norm");
    check_round_trip(s.autoencoder.as_ref(), &x, "jumprelu");
}

#[test]
fn saelens_constant_norm_rescale() {
    let tmp = tempfile::tempdir().unwrap();
    let p = plain_weights(8, D, D);
    let x = inputs(9, 6, D);
    let cfg = serde_json::json!({"architecture": "topk", "k": 3, "d_in": D, "d_sae": L,
        "normalize_activations": "constant_norm_rescale"});
    write_saelens(tmp.path(), cfg, plain_tensors(&p));
    let s = load_sae(tmp.path()).unwrap();
    let coeff: Vec<f32> = x
        .iter()
        .map(|r| {
            let n = r.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
            ((D as f64).sqrt() / n) as f32
        })
        .collect();
    let xs: Mat = x
        .iter()
        .zip(&coeff)
        .map(|(r, c)| r.iter().map(|v| v * c).collect())
        .collect();
    let z = ref_topk(&ref_pre(&xs, &p.w_enc, &p.b_enc, Some(&p.b_dec)), 3);
    let y: Mat = lin(&z, &p.w_dec, &p.b_dec)
        .iter()
        .zip(&coeff)
        .map(|(r, c)| r.iter().map(|v| v / c).collect())
        .collect();
    check_encode_decode(s.autoencoder.as_ref(), &x, &z, &y, "constant_norm_rescale");
    check_round_trip(s.autoencoder.as_ref(), &x, "topk");
}

fn write_sparsify(dir: &Path, cfg: serde_json::Value, p: &Plain, w_skip: Option<&Mat>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    let mut t = vec![
        ("encoder.weight", t2(&transpose(&p.w_enc))),
        ("encoder.bias", t1(&p.b_enc)),
        ("W_dec", t2(&p.w_dec)),
        ("b_dec", t1(&p.b_dec)),
    ];
    if let Some(w) = w_skip {
        t.push(("W_skip", t2(w)));
    }
    save(&dir.join("sae.safetensors"), t);
}

#[test]
fn sparsify_skip_connection_and_transcoder() {
    let tmp = tempfile::tempdir().unwrap();
    let p = plain_weights(10, D, D);
    let w_skip = rand_mat(&mut rng(11), D, D, 0.5); // [d_out, d_in]
    let x = inputs(12, 6, D);
    let skip_term = lin(&x, &transpose(&w_skip), &zeros(D)); // x @ W_skip^T

    // skip connection, autoencoder: b_dec subtracted before encoding, skip on the raw input
    let dir = tmp.path().join("layers.1");
    let cfg = serde_json::json!({"k": 3, "num_latents": L, "d_in": D, "skip_connection": true});
    write_sparsify(&dir, cfg, &p, Some(&w_skip));
    let s = load_sae(&dir).unwrap();
    assert_eq!(s.architecture, "topk_skip");
    assert_eq!(s.output_hook_name, None);
    let z = ref_topk(&ref_pre(&x, &p.w_enc, &p.b_enc, Some(&p.b_dec)), 3);
    let y = add(&lin(&z, &p.w_dec, &p.b_dec), &skip_term);
    check_encode_decode(s.autoencoder.as_ref(), &x, &z, &y, "sparsify skip");
    assert_close(
        &to_mat(&w_skip_of(s.autoencoder.as_ref())),
        &w_skip,
        0.0,
        "W_skip",
    );
    check_round_trip(s.autoencoder.as_ref(), &x, "topk");

    // transcoder with skip: no b_dec subtraction
    let dir = tmp.path().join("layers.1.mlp");
    let cfg = serde_json::json!({"k": 3, "num_latents": L, "d_in": D, "skip_connection": true,
        "transcode": true});
    write_sparsify(&dir, cfg, &p, Some(&w_skip));
    let s = load_sae(&dir).unwrap();
    assert_eq!(s.architecture, "topk_skip_transcoder");
    assert_eq!(s.hook_name.as_deref(), Some("layers.1.mlp"));
    assert_eq!(s.output_hook_name.as_deref(), Some("layers.1.mlp"));
    assert_eq!(s.layer, Some(1));
    let z = ref_topk(&ref_pre(&x, &p.w_enc, &p.b_enc, None), 3);
    let y = add(&lin(&z, &p.w_dec, &p.b_dec), &skip_term);
    check_encode_decode(s.autoencoder.as_ref(), &x, &z, &y, "sparsify transcoder");
    check_round_trip(s.autoencoder.as_ref(), &x, "topk");

    // transcoder without skip
    let cfg = serde_json::json!({"k": 3, "num_latents": L, "d_in": D, "transcode": true});
    write_sparsify(&dir, cfg, &p, None);
    let s = load_sae(&dir).unwrap();
    assert_eq!(s.architecture, "topk_transcoder");
    let y = lin(&z, &p.w_dec, &p.b_dec);
    check_encode_decode(
        s.autoencoder.as_ref(),
        &x,
        &z,
        &y,
        "sparsify plain transcoder",
    );

    // skip_connection without W_skip, or a W_skip of the wrong shape
    let cfg = serde_json::json!({"k": 3, "num_latents": L, "d_in": D, "skip_connection": true});
    write_sparsify(&dir, cfg.clone(), &p, None);
    let err = load_sae(&dir).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::MissingTensor { ref tensor, .. } if tensor == "W_skip"),
        "{err}"
    );
    write_sparsify(&dir, cfg, &p, Some(&rand_mat(&mut rng(1), D, D + 1, 0.5)));
    match load_sae(&dir).unwrap_err() {
        AutoencoderError::ShapeMismatch {
            file, tensor, got, ..
        } => {
            assert_eq!(tensor, "W_skip");
            assert_eq!(got, vec![D, D + 1]);
            assert!(file.ends_with("sae.safetensors"), "{file}");
        }
        other => panic!("{other}"),
    }
}

/// The skip matrix of a loaded SAE, through its saved state.
fn w_skip_of(sae: &dyn Autoencoder) -> Tensor {
    let state = sae.state().unwrap().unwrap();
    state
        .tensors
        .into_iter()
        .find(|(n, _)| n == "W_skip")
        .expect("a W_skip")
        .1
}

fn load_transcoder(dir: &Path, arch: &str, extra: Vec<(&str, Tensor)>, p: &Plain) -> LoadedSae {
    let cfg = serde_json::json!({"architecture": arch, "d_in": D, "d_sae": L, "d_out": 3,
        "apply_b_dec_to_input": false, "normalize_activations": "none",
        "metadata": {"hook_name": "blocks.3.ln2.hook_normalized",
                     "hook_name_out": "blocks.3.hook_mlp_out"}});
    let mut t = plain_tensors(p);
    t.extend(extra);
    write_saelens(dir, cfg, t);
    load_sae(dir).unwrap()
}

#[test]
fn saelens_transcoders() {
    let tmp = tempfile::tempdir().unwrap();
    let p = plain_weights(13, D, 3);
    let x = inputs(14, 6, D);
    let pre = ref_pre(&x, &p.w_enc, &p.b_enc, None);

    let s = load_transcoder(tmp.path(), "transcoder", vec![], &p);
    assert_eq!(s.architecture, "transcoder");
    assert_eq!((s.d_in, s.d_sae, s.d_out), (D, L, 3));
    assert_eq!(s.hook_name.as_deref(), Some("blocks.3.ln2.hook_normalized"));
    assert_eq!(s.output_hook_name.as_deref(), Some("blocks.3.hook_mlp_out"));
    assert_eq!(s.layer, Some(3));
    let sae = s.autoencoder.as_ref();
    assert_eq!(
        (sae.input_dim(), sae.latent_dim(), sae.output_dim()),
        (D, L, 3)
    );
    let z = ref_relu(&pre);
    let y = lin(&z, &p.w_dec, &p.b_dec);
    check_encode_decode(sae, &x, &z, &y, "transcoder");
    assert_eq!(sae.decoder_rows(&[1]).unwrap().unwrap().dims(), &[1, 3]);
    check_round_trip(sae, &x, "relu");

    // skip_transcoder: + x @ W_skip^T, W_skip [d_out, d_in]
    let w_skip = rand_mat(&mut rng(15), 3, D, 0.5);
    let s = load_transcoder(
        tmp.path(),
        "skip_transcoder",
        vec![("W_skip", t2(&w_skip))],
        &p,
    );
    assert_eq!(s.architecture, "skip_transcoder");
    let y_skip = add(&y, &lin(&x, &transpose(&w_skip), &zeros(3)));
    check_encode_decode(s.autoencoder.as_ref(), &x, &z, &y_skip, "skip_transcoder");
    // decode alone leaves the skip term out
    let zt = s.autoencoder.encode(&t2(&x)).unwrap();
    assert_close(
        &to_mat(&s.autoencoder.decode(&zt).unwrap()),
        &y,
        1e-5,
        "skip_transcoder decode",
    );
    check_round_trip(s.autoencoder.as_ref(), &x, "relu");

    // jumprelu_transcoder
    let thr = vec![0.3f32; L];
    let s = load_transcoder(
        tmp.path(),
        "jumprelu_transcoder",
        vec![("threshold", t1(&thr))],
        &p,
    );
    let zj = ref_jumprelu(&pre, &thr);
    let yj = lin(&zj, &p.w_dec, &p.b_dec);
    check_encode_decode(s.autoencoder.as_ref(), &x, &zj, &yj, "jumprelu_transcoder");
    check_round_trip(s.autoencoder.as_ref(), &x, "jumprelu");
}

#[test]
fn saelens_batchtopk_training_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let p = plain_weights(16, D, D);
    let x = inputs(17, 6, D);
    let cfg = serde_json::json!({"architecture": "batchtopk", "k": 2, "d_in": D, "d_sae": L});
    let mut t = plain_tensors(&p);
    t.push((
        "topk_threshold",
        Tensor::new(0.25f32, &Device::Cpu).unwrap(),
    ));
    write_saelens(tmp.path(), cfg, t);
    let s = load_sae(tmp.path()).unwrap();
    assert_eq!(s.architecture, "batchtopk");
    let (z, cut) = ref_threshold(&ref_pre(&x, &p.w_enc, &p.b_enc, Some(&p.b_dec)), 0.25);
    assert!(cut > 0);
    let y = lin(&z, &p.w_dec, &p.b_dec);
    check_encode_decode(s.autoencoder.as_ref(), &x, &z, &y, "saelens batchtopk");
}

#[test]
fn saelens_bad_files_give_typed_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gated_weights(18);
    let gated = |r_mag: Vec<f32>, with_b_mag: bool| {
        let mut t = vec![
            ("W_enc", t2(&g.w_enc)),
            ("b_gate", t1(&g.b_gate)),
            ("r_mag", t1(&r_mag)),
            ("W_dec", t2(&g.w_dec)),
            ("b_dec", t1(&g.b_dec)),
        ];
        if with_b_mag {
            t.push(("b_mag", t1(&g.b_mag)));
        }
        t
    };
    let cfg = serde_json::json!({"architecture": "gated", "d_in": D, "d_sae": L});
    write_saelens(tmp.path(), cfg.clone(), gated(g.r_mag.clone(), false));
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::MissingTensor { ref tensor, .. } if tensor == "b_mag"),
        "{err}"
    );
    write_saelens(tmp.path(), cfg, gated(vec![0.0; L - 1], true));
    match load_sae(tmp.path()).unwrap_err() {
        AutoencoderError::ShapeMismatch {
            file, tensor, got, ..
        } => {
            assert_eq!((tensor.as_str(), got), ("r_mag", vec![L - 1]));
            assert!(file.ends_with("sae_weights.safetensors"), "{file}");
        }
        other => panic!("{other}"),
    }

    // a transcoder's b_dec must have d_out entries
    let p = plain_weights(19, D, 3);
    let cfg = serde_json::json!({"architecture": "transcoder", "d_in": D, "d_sae": L,
        "d_out": 4});
    write_saelens(tmp.path(), cfg, plain_tensors(&p));
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::ShapeMismatch { ref tensor, .. } if tensor == "b_dec"),
        "{err}"
    );
    // ... and cannot subtract it from its input
    let cfg = serde_json::json!({"architecture": "transcoder", "d_in": D, "d_sae": L,
        "d_out": 3, "apply_b_dec_to_input": true});
    write_saelens(tmp.path(), cfg, plain_tensors(&p));
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::InvalidConfig { ref key, .. } if key == "apply_b_dec_to_input"),
        "{err}"
    );
    // nor un-normalise another site's output
    let cfg = serde_json::json!({"architecture": "transcoder", "d_in": D, "d_sae": L,
        "d_out": 3, "normalize_activations": "layer_norm"});
    write_saelens(tmp.path(), cfg, plain_tensors(&p));
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::Unsupported { ref key, .. } if key == "normalize_activations"),
        "{err}"
    );
    // skip_transcoder without W_skip, and with W_skip transposed
    let cfg = serde_json::json!({"architecture": "skip_transcoder", "d_in": D, "d_sae": L,
        "d_out": 3});
    write_saelens(tmp.path(), cfg.clone(), plain_tensors(&p));
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::MissingTensor { ref tensor, .. } if tensor == "W_skip"),
        "{err}"
    );
    let mut t = plain_tensors(&p);
    t.push(("W_skip", t2(&rand_mat(&mut rng(2), D, 3, 0.5))));
    write_saelens(tmp.path(), cfg, t);
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::ShapeMismatch { ref tensor, ref expected, .. }
            if tensor == "W_skip" && expected == "[3, 5]"),
        "{err}"
    );
    // an unknown normalisation names the supported ones
    let p = plain_weights(20, D, D);
    let cfg = serde_json::json!({"architecture": "standard", "d_in": D, "d_sae": L,
        "normalize_activations": "rms"});
    write_saelens(tmp.path(), cfg, plain_tensors(&p));
    let err = load_sae(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("rms") && err.contains("layer_norm"), "{err}");
    // a TopK SAE ranking latents by decoder norm is refused, not loaded as plain TopK
    let cfg = serde_json::json!({"architecture": "topk", "k": 2, "d_in": D, "d_sae": L,
        "rescale_acts_by_decoder_norm": true});
    write_saelens(tmp.path(), cfg, plain_tensors(&p));
    let err = load_sae(tmp.path()).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::Unsupported { ref key, .. } if key == "rescale_acts_by_decoder_norm"),
        "{err}"
    );
}

#[test]
fn decode_for_checks_its_inputs() {
    let p = plain_weights(21, D, D);
    let sae = vene_autoencoder::ReluAutoencoder::from_tensors(
        t2(&p.w_enc),
        t1(&p.b_enc),
        t2(&p.w_dec),
        t1(&p.b_dec),
    )
    .unwrap()
    .with_input_normalization(InputNormalization::LayerNorm);
    let x = t2(&inputs(22, 3, D));
    let z = sae.encode(&x).unwrap();
    // one input per latent row
    let err = sae.decode_for(&z, &x.narrow(0, 0, 2).unwrap()).unwrap_err();
    assert!(matches!(err, AutoencoderError::InvalidArgument(_)), "{err}");
    let err = sae.decode_for(&z, &z).unwrap_err();
    assert!(
        matches!(err, AutoencoderError::WidthMismatch { .. }),
        "{err}"
    );
    // the skip matrix is checked against the widths
    let err = sae
        .clone()
        .with_skip(Tensor::zeros((D, D + 1), DType::F32, &Device::Cpu).unwrap())
        .unwrap_err();
    assert!(
        matches!(err, AutoencoderError::ShapeMismatch { ref tensor, .. } if tensor == "W_skip"),
        "{err}"
    );
    let err = sae
        .with_skip(Tensor::zeros((D, D), DType::F64, &Device::Cpu).unwrap())
        .unwrap_err();
    assert!(matches!(err, AutoencoderError::DTypeMismatch(_)), "{err}");
}

#[test]
fn new_kinds_move_to_another_dtype() {
    let tmp = tempfile::tempdir().unwrap();
    let g = gated_weights(23);
    let cfg = serde_json::json!({"architecture": "gated", "d_in": D, "d_sae": L,
        "normalize_activations": "layer_norm"});
    write_saelens(
        tmp.path(),
        cfg,
        vec![
            ("W_enc", t2(&g.w_enc)),
            ("b_gate", t1(&g.b_gate)),
            ("r_mag", t1(&g.r_mag)),
            ("b_mag", t1(&g.b_mag)),
            ("W_dec", t2(&g.w_dec)),
            ("b_dec", t1(&g.b_dec)),
        ],
    );
    let s = load_sae(tmp.path()).unwrap();
    let moved = s.autoencoder.to(&Device::Cpu, DType::F64).unwrap();
    assert_eq!(moved.placement().map(|(_, d)| d), Some(DType::F64));
    let state = moved.state().unwrap().unwrap();
    assert!(state.tensors.iter().all(|(_, t)| t.dtype() == DType::F64));
    assert_eq!(state.settings["normalize_activations"], "layer_norm");
    let x = t2(&inputs(24, 4, D));
    let (a, _) = s.autoencoder.forward(&x, false).unwrap();
    let (b, _) = moved.forward(&x, false).unwrap();
    assert_eq!(b.dtype(), DType::F32);
    assert_close(&to_mat(&a), &to_mat(&b), 1e-5, "f64 copy");
}

#[test]
fn dictionary_learning_jumprelu() {
    let w = fixture_weights("dictionary_learning_jumprelu");
    let x = inputs(25, 8, 4);
    // no b_dec subtraction (the class's apply_b_dec_to_input is False)
    let pre = ref_pre(&x, &jm(&w, "W_enc"), &jv(&w, "b_enc"), None);
    let thr = jv(&w, "threshold");
    let z = ref_jumprelu(&pre, &thr);
    assert!(pre
        .iter()
        .flatten()
        .zip(thr.iter().cycle())
        .any(|(&p, &t)| p > 0.0 && p <= t));
    let y = lin(&z, &jm(&w, "W_dec"), &jv(&w, "b_dec"));
    let s = load_sae(fixture_dir("dictionary_learning_jumprelu")).unwrap();
    assert_eq!(s.architecture, "jumprelu");
    check_encode_decode_dims(
        s.autoencoder.as_ref(),
        &x,
        &z,
        &y,
        "dictionary_learning jumprelu",
    );
    check_round_trip(s.autoencoder.as_ref(), &x, "jumprelu");
    // told from its tensor names without a config
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixture_dir("dictionary_learning_jumprelu").join("ae.pt"),
        tmp.path().join("ae.pt"),
    )
    .unwrap();
    let s = load_sae(tmp.path()).unwrap();
    assert_eq!(s.architecture, "jumprelu");
    let zt = to_mat(&s.autoencoder.encode(&t2(&x)).unwrap());
    assert_close(&zt, &z, 1e-5, "jumprelu without config");
}
