//! Runs the `vene` binary on a tiny offline model folder: the fixture tiny GPT-2 (vocab 64)
//! with a word-level tokenizer written here.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/pyvene/tiny-gpt2"
);
const WORDS: &str = "the cat sat on a mat and dog ran to park red blue green big small house tree";

/// A model folder: the fixture checkpoint plus a word-level tokenizer.json (ids 1.. for WORDS,
/// 0 for unknown words).
fn model_dir(root: &Path) -> PathBuf {
    let dir = root.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(Path::new(FIXTURE).join(f), dir.join(f)).unwrap();
    }
    let mut vocab = serde_json::Map::new();
    vocab.insert("<unk>".into(), 0.into());
    for (i, w) in WORDS.split(' ').enumerate() {
        vocab.insert(w.into(), (i + 1).into());
    }
    let tok = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"}
    });
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    dir
}

fn vene(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vene"))
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "vene failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

/// Table rows (lines starting with `|`, minus header and rule).
fn table_rows(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

fn train_sae(model: &Path, root: &Path) -> PathBuf {
    let data = root.join("data.txt");
    std::fs::write(
        &data,
        "the cat sat on a mat\nthe dog ran to the park\nred house and green tree\n",
    )
    .unwrap();
    let out = root.join("sae");
    let o = vene(&[
        "train-sae",
        "--model",
        model.to_str().unwrap(),
        "--layer",
        "1",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "30",
        "--expansion",
        "2",
        "--lr",
        "1e-2",
    ]);
    let text = stdout(&o);
    assert!(
        text.contains("trained on 17 activations of width 16"),
        "{text}"
    );
    assert!(text.contains("32 latents, 30 steps"), "{text}");
    out
}

#[test]
fn train_sae_writes_saelens_layout_and_features_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let sae = train_sae(&model, tmp.path());
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sae.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["d_in"], 16);
    assert_eq!(cfg["d_sae"], 32);
    assert_eq!(cfg["hook_name"], "blocks.1.hook_resid_post");
    assert!(sae.join("sae_weights.safetensors").is_file());

    // The layer comes from the SAE's cfg.json.
    let o = vene(&[
        "features",
        "--model",
        model.to_str().unwrap(),
        "--sae",
        sae.to_str().unwrap(),
        "--prompt",
        "the cat sat",
        "--top-k",
        "3",
    ]);
    let text = stdout(&o);
    assert!(
        text.starts_with("SAE latents at layer 1 block_output (32 latents)"),
        "{text}"
    );
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1][1], "\"cat\"");
    for (pos, row) in rows.iter().enumerate() {
        assert_eq!(row[0], pos.to_string());
        let active: usize = row[2].parse().unwrap();
        let shown = if row[3].is_empty() {
            0
        } else {
            row[3].split(", ").count()
        };
        assert_eq!(shown, active.min(3));
    }
}

#[test]
fn steer_changes_generation_with_a_large_scale() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let sae = train_sae(&model, tmp.path());
    let run = |scale: &str| {
        stdout(&vene(&[
            "steer",
            "--model",
            model.to_str().unwrap(),
            "--sae",
            sae.to_str().unwrap(),
            "--latent",
            "0",
            "--scale",
            scale,
            "--prompt",
            "the cat",
            "--max-new-tokens",
            "4",
        ]))
    };
    let zero = run("0");
    let lines: Vec<&str> = zero.lines().collect();
    assert_eq!(lines[0], "prompt:  the cat");
    // Scale 0 adds nothing: the steered text is the plain text.
    assert_eq!(
        lines[1].trim_start_matches("plain:").trim(),
        lines[2].trim_start_matches("steered:").trim()
    );
    assert!(lines[3].contains("latent 0 x 0 at layer 1 block_output"));
    let big = run("-200");
    assert!(big.lines().nth(3).unwrap().contains("latent 0 x -200"));
}

#[test]
fn patch_single_layer_and_all_layers() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    let all = stdout(&vene(&[
        "patch",
        "--model",
        m,
        "--base",
        "the cat sat",
        "--source",
        "a dog ran",
    ]));
    let rows = table_rows(&all);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][0], "0");
    assert_eq!(rows[1][0], "1");
    // Patching the last block's output at the last token gives exactly the source's logits
    // there, so the base's top token falls unless it is the source's too.
    let one = stdout(&vene(&[
        "patch",
        "--model",
        m,
        "--base",
        "the cat sat",
        "--source",
        "a dog ran",
        "--layer",
        "1",
        "--top-k",
        "4",
    ]));
    let rows = table_rows(&one);
    assert_eq!(rows.len(), 4);
    for r in &rows {
        let (b, p, d): (f32, f32, f32) = (
            r[1].parse().unwrap(),
            r[2].parse().unwrap(),
            r[3].parse().unwrap(),
        );
        assert!((p - b - d).abs() < 2e-4, "{r:?}");
    }
    // Patching a prompt into itself changes nothing.
    let same = stdout(&vene(&[
        "patch", "--model", m, "--base", "the cat", "--source", "the cat", "--layer", "0",
    ]));
    for r in table_rows(&same) {
        assert_eq!(r[3].parse::<f32>().unwrap(), 0.0);
    }
}

#[test]
fn errors_are_one_line_with_exit_code_1() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec![
                "patch", "--model", m, "--base", "the", "--source", "cat", "--layer", "7",
            ],
            "out of range",
        ),
        (
            vec![
                "patch",
                "--model",
                m,
                "--base",
                "the",
                "--source",
                "cat",
                "--component",
                "block_outptu",
            ],
            "block_outptu",
        ),
        (
            vec![
                "patch", "--model", m, "--base", "the", "--source", "cat", "--layer", "x",
            ],
            "layer",
        ),
        (
            vec![
                "features",
                "--model",
                m,
                "--sae",
                "/no/such/sae",
                "--prompt",
                "the",
            ],
            "/no/such/sae",
        ),
        (
            vec![
                "patch", "--model", FIXTURE, "--base", "the", "--source", "cat",
            ],
            "tokenizer.json",
        ),
        (
            vec![
                "patch",
                "--model",
                "/no/such/model",
                "--base",
                "the",
                "--source",
                "cat",
            ],
            "/no/such/model",
        ),
        (
            vec![
                "train-sae",
                "--model",
                m,
                "--layer",
                "0",
                "--data",
                "/no/such.txt",
                "--out",
                "x",
            ],
            "/no/such.txt",
        ),
        (vec!["steer", "--model", m], "required"),
    ];
    for (args, needle) in cases {
        let o = vene(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn device_and_dtype_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    let patch = |extra: &[&str]| {
        let mut args = vec![
            "patch",
            "--model",
            m,
            "--base",
            "the cat sat",
            "--source",
            "a dog ran",
            "--layer",
            "1",
            "--top-k",
            "3",
        ];
        args.extend_from_slice(extra);
        vene(&args)
    };
    // The same table in f32 on the CPU, given or by default.
    let f32_rows = table_rows(&stdout(&patch(&[])));
    assert_eq!(
        table_rows(&stdout(&patch(&["--device", "cpu", "--dtype", "f32"]))),
        f32_rows
    );
    // bf16: the same top tokens, logits within bf16 rounding.
    let bf16_rows = table_rows(&stdout(&patch(&["--dtype", "bf16"])));
    assert_eq!(bf16_rows.len(), 3);
    let mut matched = 0;
    for b in &bf16_rows {
        if let Some(a) = f32_rows.iter().find(|a| a[0] == b[0]) {
            let (x, y): (f32, f32) = (a[2].parse().unwrap(), b[2].parse().unwrap());
            assert!((x - y).abs() < 0.05 * (1.0 + x.abs()), "{a:?} vs {b:?}");
            matched += 1;
        }
    }
    assert!(matched >= 1, "{f32_rows:?} vs {bf16_rows:?}");
    // A backend this binary was built without: one clear line naming the feature.
    #[cfg(not(feature = "cuda"))]
    {
        let o = patch(&["--device", "cuda"]);
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("without CUDA support") && err.contains("--features cuda"),
            "{err}"
        );
    }
    let o = patch(&["--dtype", "int8"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected f32, f16 or bf16"));
    let o = patch(&["--device", "tpu"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown device"));
}

// ======================================================================================
// Model / SAE loading: local paths never go to the hub, hub env vars, BOS (issue #13).
// ======================================================================================

/// `vene args...` with the hub confined to `cache` (offline) plus `env`.
fn vene_env(args: &[&str], cache: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vene"));
    cmd.args(args)
        .env_remove("HF_HOME")
        .env("HF_HUB_CACHE", cache)
        .env("HF_HUB_OFFLINE", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Exit code 1 and the one-line stderr.
fn failure(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn local_model_paths_are_never_sent_to_the_hub() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("config.json");
    std::fs::write(&file, "{}").unwrap();
    let file = file.to_str().unwrap().to_string();
    for (spec, want) in [
        ("./no-such-model", "no such folder"),
        ("nope/x/gpt2", "no such folder"),
        ("/no/such/model", "no such folder"),
        (file.as_str(), "not a folder"),
    ] {
        let o = vene_env(
            &["patch", "--model", spec, "--base", "a", "--source", "b"],
            tmp.path(),
            &[],
        );
        let err = failure(&o);
        assert!(err.contains(spec) && err.contains(want), "{spec}: {err}");
        // no hub lookup: nothing about the cache or offline mode
        assert!(
            !err.contains("cache") && !err.contains("HF_HUB"),
            "{spec}: {err}"
        );
    }
}

#[test]
fn local_sae_paths_are_never_sent_to_the_hub() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    for spec in ["./no-such-sae", "/no/such/sae", "../a/b/c", "just-a-name"] {
        let o = vene_env(
            &["features", "--model", m, "--sae", spec, "--prompt", "the"],
            tmp.path(),
            &[],
        );
        let err = failure(&o);
        assert!(
            err.contains(&format!("--sae {spec:?}: no such file or folder")),
            "{spec}: {err}"
        );
        assert!(!err.contains("hub repo"), "{spec}: {err}");
    }
    // org/repo/path is a hub path: offline with an empty cache, the error names the cache
    // folder and says how to work offline.
    let o = vene_env(
        &[
            "features",
            "--model",
            m,
            "--sae",
            "org/saes/layer_1",
            "--prompt",
            "the",
        ],
        tmp.path(),
        &[],
    );
    let err = failure(&o);
    assert!(err.contains("no such local file or folder"), "{err}");
    assert!(err.contains("`layer_1` of `org/saes`"), "{err}");
    assert!(err.contains(tmp.path().to_str().unwrap()), "{err}");
    assert!(err.contains("HF_HUB_OFFLINE=1"), "{err}");
}

/// A hub cache under `cache` holding the files of `model` as the repo `owner/name`.
fn cache_model(cache: &Path, repo_id: &str, model: &Path) {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let repo = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    let snap = repo.join("snapshots").join(sha);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), sha).unwrap();
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        std::fs::copy(model.join(f), snap.join(f)).unwrap();
    }
}

#[test]
fn hub_models_resolve_through_hf_hub_cache_and_hf_home() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let args = |m: &str| {
        [
            "patch", "--model", m, "--base", "the cat", "--source", "the dog", "--layer", "0",
        ]
        .map(str::to_string)
    };
    let run = |m: &str, cache: &Path, env: &[(&str, &str)]| {
        let a = args(m);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        vene_env(&a, cache, env)
    };
    let local = stdout(&run(model.to_str().unwrap(), tmp.path(), &[]));
    // HF_HUB_CACHE
    let hub_cache = tmp.path().join("hub-cache");
    cache_model(&hub_cache, "vene-test/tiny", &model);
    assert_eq!(stdout(&run("vene-test/tiny", &hub_cache, &[])), local);
    // HF_HOME/hub when HF_HUB_CACHE is not set (empty counts as unset)
    let home = tmp.path().join("hf-home");
    cache_model(&home.join("hub"), "vene-test/tiny2", &model);
    let o = run(
        "vene-test/tiny2",
        Path::new(""),
        &[("HF_HOME", home.to_str().unwrap())],
    );
    assert_eq!(stdout(&o), local);
    // Offline with a repo the cache lacks: the error names the repo and the cache folder.
    let err = failure(&run("vene-test/absent", &hub_cache, &[]));
    assert!(err.contains("vene-test/absent@main"), "{err}");
    assert!(err.contains(hub_cache.to_str().unwrap()), "{err}");
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
}

#[test]
fn prepend_bos_follows_the_sae_cfg_and_the_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let sae = train_sae(&model, tmp.path());
    let cfg_path = sae.join("cfg.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cfg_path).unwrap()).unwrap();
    cfg["prepend_bos"] = true.into();
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let (m, s) = (model.to_str().unwrap(), sae.to_str().unwrap());
    let features = |extra: &[&str]| {
        let mut a = vec!["features", "--model", m, "--sae", s, "--prompt", "the cat"];
        a.extend_from_slice(extra);
        vene_env(&a, tmp.path(), &[])
    };
    // The word-level tokenizer has no BOS token: the SAE's prepend_bos asks for one.
    let err = failure(&features(&[]));
    assert!(
        err.contains("prepend_bos") && err.contains("no BOS token"),
        "{err}"
    );
    // --no-prepend-bos overrides the cfg.
    let rows = table_rows(&stdout(&features(&["--no-prepend-bos"])));
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0][1], "\"the\"");

    // With <|endoftext|> in the vocabulary (GPT-2's BOS), the cfg's prepend_bos adds it first.
    let tok_path = model.join("tokenizer.json");
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tok_path).unwrap()).unwrap();
    tok["model"]["vocab"]["<|endoftext|>"] = 63.into();
    std::fs::write(&tok_path, tok.to_string()).unwrap();
    let text = stdout(&features(&[]));
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 3);
    // (the token's `|` splits the first row's cells: read it from the line)
    let first = text.lines().find(|l| l.starts_with("| 0 ")).unwrap();
    assert!(first.contains("\"<|endoftext|>\""), "{text}");
    assert_eq!(rows[1][1], "\"the\"");
    // The last flag wins.
    let rows = table_rows(&stdout(&features(&["--prepend-bos", "--no-prepend-bos"])));
    assert_eq!(rows.len(), 2);
    // Without an SAE saying so, patch tokenizes as before, and --prepend-bos adds the BOS.
    let patch = |extra: &[&str]| {
        let mut a = vec![
            "patch", "--model", m, "--base", "the cat", "--source", "the dog", "--layer", "0",
        ];
        a.extend_from_slice(extra);
        stdout(&vene_env(&a, tmp.path(), &[]))
    };
    let plain = patch(&[]);
    assert_eq!(plain, patch(&["--no-prepend-bos"]));
    assert_ne!(plain, patch(&["--prepend-bos"]));
}
