//! `vene eval-sae` on the offline demo model: an exact SAE recovers all of the loss, the JSON
//! report equals the library's `eval_sae` on the same sequences, and bad input is refused.

mod common;

use common::vene;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use vene::hooks::{Component, Site};
use vene::models::Model;
use vene_cli::demo::folders::{write_model, WIDTH};

/// An SAE in SAELens's layout at `hook` whose reconstruction is its input exactly:
/// latents `[relu(x), relu(-x)]`, decoder `[I; -I]`.
fn exact_sae(root: &Path, hook: &str, layer: usize) -> PathBuf {
    let eye = Tensor::eye(WIDTH, DType::F32, &Device::Cpu).unwrap();
    let enc = Tensor::cat(&[&eye, &eye.neg().unwrap()], 0).unwrap(); // [2d, d], pyvene layout
    let ae = vene::autoencoder::AutoencoderLayer::from_tensors(
        enc.clone(),
        Tensor::zeros(2 * WIDTH, DType::F32, &Device::Cpu).unwrap(),
        enc.t().unwrap().contiguous().unwrap(),
        Tensor::zeros(WIDTH, DType::F32, &Device::Cpu).unwrap(),
    )
    .unwrap();
    let dir = root.join("exact-sae");
    vene_cli::commands::train_sae::save_saelens(&ae, &dir, hook, layer, "demo", Some(false), false)
        .unwrap();
    dir
}

const TEXT: &str = "Paris is in France\n\nthe capital of Japan is Tokyo\nBerlin is in Germany and Rome is in Italy\n";

#[test]
fn an_exact_sae_recovers_all_the_loss_and_the_json_is_the_librarys_report() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_model(tmp.path(), 3).unwrap();
    let sae = exact_sae(tmp.path(), "blocks.1.hook_resid_pre", 1);
    let text = tmp.path().join("text.txt");
    std::fs::write(&text, TEXT).unwrap();
    let json = tmp.path().join("report.json");
    let plot = tmp.path().join("density.svg");
    let m = model.to_str().unwrap();
    let out = vene(&[
        "eval-sae",
        "--model",
        m,
        "--sae",
        sae.to_str().unwrap(),
        "--text",
        text.to_str().unwrap(),
        "--context-length",
        "5",
        "--batch-size",
        "2",
        "--json",
        json.to_str().unwrap(),
        "--density-plot",
        plot.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("at block_input of layer 1 (blocks.1.hook_resid_pre)"),
        "{stdout}"
    );
    assert!(stdout.contains("| loss recovered"), "{stdout}");
    assert!(stdout.contains("100.00%"), "{stdout}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let f = |k: &str| report[k].as_f64().unwrap();
    assert_eq!(f("mse"), 0.0);
    assert_eq!(f("explained_variance"), 1.0);
    assert!((f("ce_loss_clean") - f("ce_loss_spliced")).abs() < 1e-6);

    // The same sequences through the library: lines cut into chunks of 5 tokens.
    let lm = vene_cli::load::model(m, &vene_cli::backend::Backend::cpu()).unwrap();
    let mut seqs = Vec::new();
    for line in TEXT.lines().filter(|l| !l.trim().is_empty()) {
        let (ids, _) = lm.encode(line).unwrap();
        seqs.extend(ids.chunks(5).map(<[u32]>::to_vec));
    }
    let model = Model::from_dir(&model, DType::F32, &Device::Cpu).unwrap();
    let loaded = vene::autoencoder::load_sae(&sae).unwrap();
    let splice = vene::Splice::new(
        Site::new(1, Component::BlockInput),
        std::sync::Arc::from(loaded.autoencoder),
    );
    let lib = vene::eval_sae(&model, &splice, &seqs, &Default::default(), &mut |_, _| {}).unwrap();
    assert_eq!(report["sequences"].as_u64().unwrap() as usize, seqs.len());
    assert_eq!(report["tokens"].as_u64().unwrap() as usize, lib.tokens);
    for k in [
        "ce_loss_clean",
        "ce_loss_zero_ablated",
        "l0",
        "kl_div_zero_ablated",
    ] {
        let lib_v = serde_json::to_value(&lib).unwrap()[k].as_f64().unwrap();
        assert!((f(k) - lib_v).abs() < 1e-5, "{k}: {} vs {lib_v}", f(k));
    }
    let density: Vec<f64> = serde_json::from_value(report["latent_density"].clone()).unwrap();
    // The histogram counts the dead latents apart (its title says how many).
    let dead = lib.latent_density.iter().filter(|&&d| d == 0.0).count();
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..80]
    );
    assert!(
        svg.contains(&format!("{dead} dead")),
        "no '{dead} dead' in the plot"
    );
    assert_eq!(density.len(), lib.latent_density.len());
    for (a, b) in density.iter().zip(&lib.latent_density) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}"); // JSON keeps ~17 digits
    }
}

#[test]
fn eval_sae_refuses_bad_input_with_what_was_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let model = write_model(tmp.path(), 3).unwrap();
    let sae = exact_sae(tmp.path(), "blocks.1.hook_resid_pre", 1);
    let empty = tmp.path().join("empty.txt");
    std::fs::write(&empty, "\n\n").unwrap();
    let (m, s, e) = (
        model.to_str().unwrap(),
        sae.to_str().unwrap(),
        empty.to_str().unwrap(),
    );
    for (extra, needle) in [
        (vec!["--text", e], "no text"),
        (vec!["--text", "/no/such/file.txt"], "/no/such/file.txt"),
        (vec!["--text", e, "--batch-size", "0"], "--batch-size"),
        (
            vec!["--text", e, "--dense-threshold", "2"],
            "--dense-threshold",
        ),
        (vec!["--text", e, "--layer", "9"], "layer 9"),
        (vec!["--text", e, "--density-plot", "d.gif"], "d.gif"),
    ] {
        let mut args = vec!["eval-sae", "--model", m, "--sae", s];
        args.extend(extra);
        let out = vene(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}
