//! Fuzzing every SAE loader (SAELens, sparsify, Gemma Scope npz, dictionary_learning,
//! pyvene, Llama Scope): mutated folders must give errors, never panics or aborts. Fixed seeds, a few
//! seconds per target; the inputs that ever failed are replayed from
//! `tests/fixtures/fuzz-regressions/`.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use vene_autoencoder::{load_sae, load_sae_as, write_safetensors, LoadOptions, SaeFormat};
use vene_testutil::fuzz::{replay_regressions, FuzzTarget};

const D: usize = 4;
const L: usize = 6;

fn t(shape: &[usize], offset: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| ((i as f32) * 0.37 + offset).sin()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn safetensors_bytes(tensors: &[(&str, Tensor)]) -> Vec<u8> {
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    vene_autoencoder::safetensors_bytes(&map).unwrap()
}

/// Loads `dir` as `format` and by detection; the results do not matter, panics do.
fn load_both(dir: &Path, format: SaeFormat) {
    let _ = load_sae_as(dir, format, &LoadOptions::default());
    let _ = load_sae(dir);
}

fn run(target: FuzzTarget, format: SaeFormat, name: &str) {
    let report = target
        .budget(Duration::from_secs(3))
        .iterations(400)
        .run(|dir| load_both(dir, format));
    assert!(report.runs > 10, "{name}: only {} runs", report.runs);
    replay_regressions(name, |dir| load_both(dir, format));
}

#[test]
fn fuzz_saelens() {
    let cfg = serde_json::json!({"d_in": D, "d_sae": L, "architecture": "jumprelu",
        "apply_b_dec_to_input": false, "normalize_activations": "none", "hook_name": "blocks.1.hook_resid_pre"});
    let weights = safetensors_bytes(&[
        ("W_enc", t(&[D, L], 0.1)),
        ("b_enc", t(&[L], 0.2)),
        ("W_dec", t(&[L, D], 0.3)),
        ("b_dec", t(&[D], 0.4)),
        ("threshold", t(&[L], 0.5).abs().unwrap()),
    ]);
    let files = vec![
        ("cfg.json".to_string(), cfg.to_string().into_bytes()),
        ("sae_weights.safetensors".to_string(), weights),
    ];
    run(
        FuzzTarget::new("saelens", files).seed(1),
        SaeFormat::SaeLens,
        "saelens",
    );
}

#[test]
fn fuzz_sparsify() {
    let cfg = serde_json::json!({"num_latents": L, "k": 2, "d_in": D, "expansion_factor": 2,
        "activation": "topk", "skip_connection": false});
    let weights = safetensors_bytes(&[
        ("encoder.weight", t(&[L, D], 0.1)),
        ("encoder.bias", t(&[L], 0.2)),
        ("W_dec", t(&[L, D], 0.3)),
        ("b_dec", t(&[D], 0.4)),
    ]);
    let files = vec![
        ("cfg.json".to_string(), cfg.to_string().into_bytes()),
        ("sae.safetensors".to_string(), weights),
    ];
    run(
        FuzzTarget::new("sparsify", files).seed(2),
        SaeFormat::Sparsify,
        "sparsify",
    );
}

#[test]
fn fuzz_gemma_scope_npz() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("params.npz");
    Tensor::write_npz(
        &[
            ("W_enc", &t(&[D, L], 0.1)),
            ("W_dec", &t(&[L, D], 0.2)),
            ("b_enc", &t(&[L], 0.3)),
            ("b_dec", &t(&[D], 0.4)),
            ("threshold", &t(&[L], 0.5).abs().unwrap()),
        ],
        &path,
    )
    .unwrap();
    let files = vec![("params.npz".to_string(), std::fs::read(&path).unwrap())];
    run(
        FuzzTarget::new("gemmascope", files).seed(3),
        SaeFormat::GemmaScope,
        "gemmascope",
    );
}

#[test]
fn fuzz_llama_scope() {
    let cfg = serde_json::json!({"d_model": D, "d_sae": L, "act_fn": "jumprelu",
        "jump_relu_threshold": 0.5, "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": 3.0, "out": 3.0},
        "hook_point_in": "blocks.2.hook_resid_post", "hook_point_out": "blocks.2.hook_resid_post",
        "sparsity_include_decoder_norm": true, "apply_decoder_bias_to_pre_encoder": true});
    let weights = safetensors_bytes(&[
        ("encoder.weight", t(&[L, D], 0.1)),
        ("encoder.bias", t(&[L], 0.2)),
        ("decoder.weight", t(&[D, L], 0.3)),
        ("decoder.bias", t(&[D], 0.4)),
    ]);
    let files = vec![
        ("hyperparams.json".to_string(), cfg.to_string().into_bytes()),
        ("final.safetensors".to_string(), weights),
    ];
    // The weights file beside its hyperparams.json (the hub keeps it in checkpoints/).
    let load = |dir: &Path| {
        load_sae_as(
            dir.join("final.safetensors"),
            SaeFormat::LlamaScope,
            &LoadOptions::default(),
        )
    };
    let tmp = tempfile::tempdir().unwrap();
    for (name, bytes) in &files {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
    }
    assert_eq!(load(tmp.path()).unwrap().d_sae, L);
    let report = FuzzTarget::new("llamascope", files)
        .seed(6)
        .budget(Duration::from_secs(3))
        .iterations(400)
        .run(|dir| {
            let _ = load(dir);
        });
    assert!(report.runs > 10, "llamascope: only {} runs", report.runs);
}

#[test]
fn fuzz_dictionary_learning() {
    let dir = vene_testutil::fixtures().join("sae/dictionary_learning");
    let target = FuzzTarget::from_dir("dictionary_learning", &dir).seed(4);
    run(target, SaeFormat::DictionaryLearning, "dictionary_learning");
}

#[test]
fn fuzz_pyvene_state_dicts() {
    // the torch pickle pyvene writes, and vene's safetensors form of it
    let dir = vene_testutil::fixture("saved_ae_intervenable");
    let bin = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "bin"))
        .unwrap();
    let files = vec![(
        "intkey_layer_1_comp_block_output_unit_pos_nunit_1#0.bin".to_string(),
        std::fs::read(&bin).unwrap(),
    )];
    run(
        FuzzTarget::new("pyvene_bin", files).seed(5),
        SaeFormat::Pyvene,
        "pyvene_bin",
    );
    let st = safetensors_bytes(&[
        ("autoencoder.encoder.0.weight", t(&[L, D], 0.1)),
        ("autoencoder.encoder.0.bias", t(&[L], 0.2)),
        ("autoencoder.decoder.0.weight", t(&[D, L], 0.3)),
        ("autoencoder.decoder.0.bias", t(&[D], 0.4)),
        (
            "interchange_dim",
            Tensor::new(&[1i64, 2], &Device::Cpu).unwrap(),
        ),
    ]);
    let files = vec![("intkey_x.safetensors".to_string(), st)];
    let report = FuzzTarget::new("pyvene_safetensors", files)
        .seed(6)
        .budget(Duration::from_secs(2))
        .iterations(300)
        .run(|dir| {
            let _ = load_sae_as(
                dir.join("intkey_x.safetensors"),
                SaeFormat::Pyvene,
                &LoadOptions::default(),
            );
            let _ = vene_autoencoder::AutoencoderLayer::load(
                dir.join("intkey_x.safetensors"),
                &Device::Cpu,
            );
        });
    assert!(report.runs > 10);
    let _ = DType::F32;
}

/// The seed inputs themselves load (so the fuzzers start from valid folders).
#[test]
fn fuzz_seeds_are_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("layers.1");
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = serde_json::json!({"num_latents": L, "k": 2, "d_in": D});
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    let map: HashMap<String, Tensor> = [
        ("encoder.weight", t(&[L, D], 0.1)),
        ("encoder.bias", t(&[L], 0.2)),
        ("W_dec", t(&[L, D], 0.3)),
        ("b_dec", t(&[D], 0.4)),
    ]
    .into_iter()
    .map(|(n, t)| (n.to_string(), t))
    .collect();
    write_safetensors(&map, &dir.join("sae.safetensors")).unwrap();
    assert_eq!(load_sae(&dir).unwrap().d_sae, L);
    let dl = load_sae(vene_testutil::fixtures().join("sae/dictionary_learning")).unwrap();
    assert!(dl.d_in > 0);
}

#[test]
fn fuzz_dictionary_learning_gated() {
    let dir = vene_testutil::fixtures().join("sae/dictionary_learning_gated");
    let target = FuzzTarget::from_dir("dictionary_learning_gated", &dir).seed(7);
    run(
        target,
        SaeFormat::DictionaryLearning,
        "dictionary_learning_gated",
    );
}

#[test]
fn fuzz_saelens_gated_layer_norm_and_skip_transcoder() {
    let cfg = serde_json::json!({"d_in": D, "d_sae": L, "architecture": "gated",
        "normalize_activations": "layer_norm", "hook_name": "blocks.1.hook_resid_pre"});
    let weights = safetensors_bytes(&[
        ("W_enc", t(&[D, L], 0.1)),
        ("b_gate", t(&[L], 0.2)),
        ("r_mag", t(&[L], 0.6)),
        ("b_mag", t(&[L], 0.7)),
        ("W_dec", t(&[L, D], 0.3)),
        ("b_dec", t(&[D], 0.4)),
    ]);
    let files = vec![
        ("cfg.json".to_string(), cfg.to_string().into_bytes()),
        ("sae_weights.safetensors".to_string(), weights),
    ];
    run(
        FuzzTarget::new("saelens_gated", files).seed(8),
        SaeFormat::SaeLens,
        "saelens_gated",
    );
    let cfg = serde_json::json!({"d_in": D, "d_sae": L, "d_out": 3,
        "architecture": "skip_transcoder", "apply_b_dec_to_input": false,
        "hook_name": "blocks.1.ln2.hook_normalized", "hook_name_out": "blocks.1.hook_mlp_out"});
    let weights = safetensors_bytes(&[
        ("W_enc", t(&[D, L], 0.1)),
        ("b_enc", t(&[L], 0.2)),
        ("W_dec", t(&[L, 3], 0.3)),
        ("b_dec", t(&[3], 0.4)),
        ("W_skip", t(&[3, D], 0.5)),
    ]);
    let files = vec![
        ("cfg.json".to_string(), cfg.to_string().into_bytes()),
        ("sae_weights.safetensors".to_string(), weights),
    ];
    run(
        FuzzTarget::new("saelens_skip_transcoder", files).seed(9),
        SaeFormat::SaeLens,
        "saelens_skip_transcoder",
    );
}

#[test]
fn fuzz_sparsify_skip_transcoder() {
    let cfg = serde_json::json!({"num_latents": L, "k": 2, "d_in": D,
        "activation": "topk", "skip_connection": true, "transcode": true});
    let weights = safetensors_bytes(&[
        ("encoder.weight", t(&[L, D], 0.1)),
        ("encoder.bias", t(&[L], 0.2)),
        ("W_dec", t(&[L, D], 0.3)),
        ("b_dec", t(&[D], 0.4)),
        ("W_skip", t(&[D, D], 0.5)),
    ]);
    let files = vec![
        ("cfg.json".to_string(), cfg.to_string().into_bytes()),
        ("sae.safetensors".to_string(), weights),
    ];
    run(
        FuzzTarget::new("sparsify_skip_transcoder", files).seed(10),
        SaeFormat::Sparsify,
        "sparsify_skip_transcoder",
    );
}
