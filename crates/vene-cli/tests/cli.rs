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

/// Argument errors are clap's own, in full (what is missing, a similar name, the usage), with
/// clap's exit code 2; `vene` alone prints the usage and the subcommands.
#[test]
fn argument_errors_are_claps_own_with_usage() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec![],
            vec!["Usage: vene", "features", "patch", "steer", "train-sae"],
        ),
        (
            vec!["steer", "--model", m],
            vec![
                "required",
                "--sae <SAE>",
                "--latent <LATENT>",
                "Usage: vene steer",
            ],
        ),
        (
            vec!["featurs"],
            vec!["unrecognized subcommand 'featurs'", "features"],
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
            vec!["block_outptu", "--component", "try '--help'"],
        ),
    ];
    for (args, needles) in cases {
        let o = vene(&args);
        let err = String::from_utf8(o.stderr).unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(o.stdout.is_empty(), "{args:?}");
        assert!(err.lines().count() > 1, "{args:?}: {err}");
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
        }
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
    // Values clap parses: clap's error and exit code 2.
    let o = patch(&["--dtype", "int8"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected f32, f16 or bf16"));
    let o = patch(&["--device", "tpu"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown device"));
}

/// `s` split into words as a shell would for the commands `vene demo` prints: spaces separate,
/// double or single quotes group.
fn shell_words(s: &str) -> Vec<String> {
    let (mut words, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
    for c in s.chars() {
        match (quote, c) {
            (None, '"' | '\'') => (quote, any) = (Some(c), true),
            (Some(q), c) if c == q => quote = None,
            (None, ' ') => {
                if any {
                    words.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (_, c) => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        words.push(word);
    }
    words
}

/// `vene demo` writes a model, an SAE and a corpus offline, and every command it suggests runs
/// on them: the README's try-it-offline path.
#[test]
fn demo_writes_a_model_an_sae_and_commands_that_run() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = vene(&["demo", "--out", out.to_str().unwrap(), "--sae-steps", "200"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = stdout(&o);
    for f in [
        "model/config.json",
        "model/model.safetensors",
        "model/tokenizer.json",
        "sae/cfg.json",
        "sae/sae_weights.safetensors",
        "corpus.txt",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // Nothing left beside it.
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["demo".to_string()]);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("sae/cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["model_name"], "vene-demo-gpt2");
    assert_eq!(cfg["hook_name"], "blocks.0.hook_resid_post");
    assert_eq!(cfg["d_in"], 32);
    // 40 city facts and 8 sentences.
    let corpus = std::fs::read_to_string(out.join("corpus.txt")).unwrap();
    assert_eq!(corpus.lines().count(), 48);
    assert!(corpus.contains("The city of Paris is in the country of France"));

    let commands: Vec<Vec<String>> = text
        .lines()
        .skip_while(|l| !l.starts_with("try"))
        .skip(1)
        .map(|l| shell_words(l.trim()))
        .collect();
    assert_eq!(commands.len(), 4, "{text}");
    std::fs::create_dir(tmp.path().join("cwd")).unwrap();
    for words in &commands {
        assert_eq!(words[0], "vene");
        let o = Command::new(env!("CARGO_BIN_EXE_vene"))
            .args(&words[1..])
            .current_dir(tmp.path().join("cwd"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{words:?}: {err}");
        let out = stdout(&o);
        // Every token string shown is readable: no empty token cells.
        assert!(!out.contains("\"\""), "{words:?}: {out}");
        match words[1].as_str() {
            // The demo model knows its facts: Paris -> France, Tokyo -> Japan.
            "patch" => assert!(
                out.contains("base top token \"France\", source top token \"Japan\""),
                "{out}"
            ),
            "features" => assert_eq!(table_rows(&out).len(), 9, "{out}"),
            "steer" => assert!(out.contains("steered:"), "{out}"),
            "train-sae" => assert!(tmp.path().join("cwd/my-sae/cfg.json").is_file()),
            other => panic!("unexpected command {other}"),
        }
    }
    // A second demo into the same folder is refused and leaves it as it was.
    let before = std::fs::read(out.join("sae/sae_weights.safetensors")).unwrap();
    let o = vene(&["demo", "--out", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not an empty folder"));
    assert_eq!(
        std::fs::read(out.join("sae/sae_weights.safetensors")).unwrap(),
        before
    );
}
