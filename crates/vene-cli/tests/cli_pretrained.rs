//! `--sae-release/--sae-id` and `vene sae-releases`, on the fixture tiny GPT-2 (d_model 16,
//! 2 layers) with SAEs put in a temporary hub cache (`HF_HUB_CACHE`, offline).

mod common;

use common::{model_dir_with_words, stdout, FEW_WORDS};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use candle_core::{Device, Tensor};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

/// The snapshot folder of `path` in `repo_id` under the hub cache `cache`.
fn snapshot(cache: &Path, repo_id: &str, path: &str) -> PathBuf {
    let repo = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), SHA).unwrap();
    let dir = repo.join("snapshots").join(SHA).join(path);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Seeded-looking weights: `sin` of a ramp, so that latents differ.
fn weights(shape: &[usize], phase: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7 + phase).sin()).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn zeros(n: usize) -> Tensor {
    Tensor::zeros(n, candle_core::DType::F32, &Device::Cpu).unwrap()
}

/// A SAELens SAE (d_in 16, d_sae 8) whose cfg names no hook (as older configs).
fn saelens(dir: &Path) {
    let cfg = serde_json::json!({"d_in": 16, "d_sae": 8, "architecture": "standard"});
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    let w: HashMap<String, Tensor> = [
        ("W_enc", weights(&[16, 8], 0.0)),
        ("b_enc", zeros(8)),
        ("W_dec", weights(&[8, 16], 1.0)),
        ("b_dec", zeros(16)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    candle_core::safetensors::save(&w, dir.join("sae_weights.safetensors")).unwrap();
}

/// A Gemma Scope SAE (d_in 16, d_sae 8, threshold 0).
fn gemma_scope(dir: &Path) {
    let ts = [
        ("W_enc", weights(&[16, 8], 2.0)),
        ("W_dec", weights(&[8, 16], 3.0)),
        ("b_enc", zeros(8)),
        ("b_dec", zeros(16)),
        ("threshold", zeros(8)),
    ];
    Tensor::write_npz(&ts, dir.join("params.npz")).unwrap();
}

/// `vene args` with the hub cache `cache`, offline, and `env`.
fn vene(args: &[&str], cache: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vene"));
    cmd.args(args)
        .env_remove("HF_HOME")
        .env_remove("VENE_SAE_REGISTRY")
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_OFFLINE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Exit code `code` and stderr.
fn failure(o: &Output, code: i32) -> String {
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn features_and_steer_load_an_sae_by_release_and_id_at_the_registry_site() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir_with_words(tmp.path(), FEW_WORDS);
    let m = model.to_str().unwrap();
    let cache = tmp.path().join("hub");
    // SAELens: gpt2-small-res-jb's blocks.1.hook_resid_pre; the cfg names no hook, the
    // registry does: block_input of layer 1.
    let jb = snapshot(
        &cache,
        "jbloom/GPT2-Small-SAEs-Reformatted",
        "blocks.1.hook_resid_pre",
    );
    saelens(&jb);
    // Gemma Scope canonical: layer_1/width_16k/canonical is average_l0_102 (params.npz names
    // no hook; the registry says blocks.1.hook_resid_post: block_output of layer 1).
    let gs = snapshot(
        &cache,
        "google/gemma-scope-2b-pt-res",
        "layer_1/width_16k/average_l0_102",
    );
    gemma_scope(&gs);
    for (release, id, dir, layer, component) in [
        (
            "gpt2-small-res-jb",
            "blocks.1.hook_resid_pre",
            &jb,
            "1",
            "block_input",
        ),
        (
            "gemma-scope-2b-pt-res-canonical",
            "layer_1/width_16k/canonical",
            &gs,
            "1",
            "block_output",
        ),
    ] {
        let by_release = stdout(&vene(
            &[
                "features",
                "--model",
                m,
                "--sae-release",
                release,
                "--sae-id",
                id,
                "--prompt",
                "the cat sat",
            ],
            &cache,
            &[],
        ));
        assert!(
            by_release.starts_with(&format!(
                "SAE latents at layer {layer} {component} (8 latents)"
            )),
            "{by_release}"
        );
        let by_path = stdout(&vene(
            &[
                "features",
                "--model",
                m,
                "--sae",
                dir.to_str().unwrap(),
                "--layer",
                layer,
                "--component",
                component,
                "--prompt",
                "the cat sat",
            ],
            &cache,
            &[],
        ));
        assert_eq!(by_release, by_path, "{release}");
        // The hub path of the same files gets the registry's site too.
        let hub_path = match release {
            "gpt2-small-res-jb" => format!("jbloom/GPT2-Small-SAEs-Reformatted/{id}"),
            _ => "google/gemma-scope-2b-pt-res/layer_1/width_16k/average_l0_102".to_string(),
        };
        let by_hub_path = stdout(&vene(
            &[
                "features",
                "--model",
                m,
                "--sae",
                &hub_path,
                "--prompt",
                "the cat sat",
            ],
            &cache,
            &[],
        ));
        assert_eq!(by_release, by_hub_path, "{hub_path}");
        // steer takes the same flags.
        let steer = |sae: &[&str]| {
            let mut a = vec![
                "steer",
                "--model",
                m,
                "--latent",
                "2",
                "--scale",
                "8",
                "--prompt",
                "the cat",
                "--max-new-tokens",
                "3",
            ];
            a.extend_from_slice(sae);
            stdout(&vene(&a, &cache, &[]))
        };
        let s = steer(&["--sae-release", release, "--sae-id", id]);
        assert!(s.contains(&format!("at layer {layer} {component}")), "{s}");
        assert_eq!(
            s,
            steer(&[
                "--sae",
                dir.to_str().unwrap(),
                "--layer",
                layer,
                "--component",
                component
            ])
        );
    }
}

#[test]
fn the_registry_site_replaces_a_hook_name_vene_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir_with_words(tmp.path(), FEW_WORDS);
    let m = model.to_str().unwrap();
    let cache = tmp.path().join("hub");
    let dir = snapshot(&cache, "me/saes", "run-1");
    saelens(&dir);
    // The cfg names a hook vene does not read (dictionary_learning style).
    let cfg = serde_json::json!({"d_in": 16, "d_sae": 8, "architecture": "standard",
        "hook_name": "resid_post_layer_0"});
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    let extra = tmp.path().join("extra.json");
    let reg = serde_json::json!({"format_version": 1, "releases": [{"name": "mine",
        "repo_id": "me/saes", "model": "openai-community/gpt2", "format": "SaeLens",
        "saes": [{"id": "a", "path": "run-1", "hook": "blocks.1.hook_mlp_out"}]}]});
    std::fs::write(&extra, reg.to_string()).unwrap();
    let o = vene(
        &[
            "features",
            "--model",
            m,
            "--sae-release",
            "mine",
            "--sae-id",
            "a",
            "--prompt",
            "the cat",
        ],
        &cache,
        &[("VENE_SAE_REGISTRY", extra.to_str().unwrap())],
    );
    assert!(stdout(&o).starts_with("SAE latents at layer 1 mlp_output (8 latents)"));
}

#[test]
fn sae_flag_errors_name_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir_with_words(tmp.path(), FEW_WORDS);
    let m = model.to_str().unwrap();
    let cache = tmp.path().join("hub");
    let features = |sae: &[&str]| {
        let mut a = vec!["features", "--model", m, "--prompt", "the"];
        a.extend_from_slice(sae);
        vene(&a, &cache, &[])
    };
    // Unknown id: one line, exit 1, the closest ids.
    let err = failure(
        &features(&[
            "--sae-release",
            "gpt2-small-res-jb",
            "--sae-id",
            "blocks.1.hook_resid_post",
        ]),
        1,
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("--sae-release gpt2-small-res-jb --sae-id blocks.1.hook_resid_post"),
        "{err}"
    );
    assert!(
        err.contains("has no SAE id `blocks.1.hook_resid_post`"),
        "{err}"
    );
    assert!(err.contains("`blocks.1.hook_resid_pre`"), "{err}");
    // Unknown release.
    let err = failure(
        &features(&["--sae-release", "gemma-scope-2b-res", "--sae-id", "x"]),
        1,
    );
    assert!(
        err.contains("unknown SAE release `gemma-scope-2b-res`"),
        "{err}"
    );
    assert!(err.contains("vene sae-releases"), "{err}");
    // The SAE is checked before the model is loaded (or downloaded).
    let o = vene(
        &[
            "features",
            "--model",
            "/no/such/model",
            "--prompt",
            "the",
            "--sae-release",
            "nope",
            "--sae-id",
            "x",
        ],
        &cache,
        &[],
    );
    let err = failure(&o, 1);
    assert!(
        err.contains("unknown SAE release `nope`") && !err.contains("/no/such/model"),
        "{err}"
    );
    // Known id, not in the offline cache: the release, id, repo and cache folder are named.
    let err = failure(
        &features(&[
            "--sae-release",
            "gpt2-small-res-jb",
            "--sae-id",
            "blocks.8.hook_resid_pre",
        ]),
        1,
    );
    assert!(
        err.contains("`blocks.8.hook_resid_pre` of `jbloom/GPT2-Small-SAEs-Reformatted`"),
        "{err}"
    );
    assert!(err.contains(cache.to_str().unwrap()), "{err}");
    // clap: both ways, a release without an id, neither.
    let err = failure(
        &features(&["--sae", "x", "--sae-release", "r", "--sae-id", "i"]),
        2,
    );
    assert!(err.contains("cannot be used with"), "{err}");
    let err = failure(&features(&["--sae-release", "r"]), 2);
    assert!(err.contains("--sae-id <SAE_ID>"), "{err}");
    let err = failure(&features(&[]), 2);
    assert!(err.contains("--sae <SAE>"), "{err}");
}

#[test]
fn sae_releases_lists_releases_and_one_release_s_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path();
    let all = stdout(&vene(&["sae-releases"], cache, &[]));
    let row = |text: &str, first: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(&format!("| {first} ")))
            .unwrap_or_else(|| panic!("{first} not in {text}"))
            .trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    assert_eq!(
        row(&all, "gpt2-small-res-jb"),
        [
            "gpt2-small-res-jb",
            "openai-community/gpt2",
            "SaeLens",
            "13",
            "blocks.L.hook_resid_pre, blocks.L.hook_resid_post",
            "jbloom/GPT2-Small-SAEs-Reformatted"
        ]
    );
    assert_eq!(
        row(&all, "llama_scope_lxm_8x"),
        [
            "llama_scope_lxm_8x",
            "meta-llama/Llama-3.1-8B",
            "LlamaScope",
            "32",
            "blocks.L.hook_mlp_out",
            "fnlp/Llama3_1-8B-Base-LXM-8x"
        ]
    );
    let one = stdout(&vene(
        &["sae-releases", "gemma-scope-2b-pt-res-canonical"],
        cache,
        &[],
    ));
    assert!(one.contains("repo:   google/gemma-scope-2b-pt-res\nmodel:  google/gemma-2-2b\nformat: GemmaScope\nsaes:   58\n"), "{one}");
    assert_eq!(
        row(&one, "layer_5/width_16k/canonical"),
        [
            "layer_5/width_16k/canonical",
            "5",
            "blocks.5.hook_resid_post",
            "layer_5/width_16k/average_l0_68"
        ]
    );
    let jb = stdout(&vene(&["sae-releases", "gpt2-small-res-jb"], cache, &[]));
    assert!(jb.contains("saes:   13\nnotes:  trained on TransformerLens activations with center_writing_weights=True"), "{jb}");
    assert!(!one.contains("notes:"), "{one}");
    let err = failure(&vene(&["sae-releases", "pythia-70m-res"], cache, &[]), 1);
    assert!(
        err.contains("did you mean `pythia-70m-deduped-res-sm`"),
        "{err}"
    );
    // VENE_SAE_REGISTRY adds releases.
    let extra = tmp.path().join("extra.json");
    let reg = serde_json::json!({"format_version": 1, "releases": [{"name": "my-saes",
        "repo_id": "me/saes", "model": "openai-community/gpt2", "format": "SaeLens",
        "hook": "blocks.{layer}.hook_mlp_out", "saes": ["layer_0", "layer_1"]}]});
    std::fs::write(&extra, reg.to_string()).unwrap();
    let env = [("VENE_SAE_REGISTRY", extra.to_str().unwrap())];
    let all = stdout(&vene(&["sae-releases"], cache, &env));
    assert_eq!(
        row(&all, "my-saes"),
        [
            "my-saes",
            "openai-community/gpt2",
            "SaeLens",
            "2",
            "blocks.L.hook_mlp_out",
            "me/saes"
        ]
    );
    std::fs::write(&extra, "{").unwrap();
    let err = failure(&vene(&["sae-releases"], cache, &env), 1);
    assert!(
        err.contains(&format!("SAE registry {}", extra.display())),
        "{err}"
    );
}
