//! Runs the `vene` binary on a tiny offline model folder: the fixture tiny GPT-2 (vocab 64)
//! with a word-level tokenizer written here.

mod common;

use common::{model_dir, stdout, vene, FIXTURE, WORDS};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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
    assert_eq!(commands.len(), 6, "{text}");
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
            "eval-sae" => assert!(out.contains("| loss recovered"), "{out}"),
            "dashboard" => {
                let latent = &words[words.iter().position(|w| w == "--latent").unwrap() + 1];
                let dir = tmp.path().join("cwd/dashboard");
                assert!(dir.join("index.html").is_file());
                let page =
                    std::fs::read_to_string(dir.join(format!("latent-{latent}.html"))).unwrap();
                // The suggested latent fires on the Paris prompt's facts.
                assert!(page.contains("class=\"tok max\""), "{page}");
            }
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

// ---------------------------------------------------------------------------------------------
// Issue #13 (first contact): `patch --position/--pairs/--head/--site`, `train-sae` chunking
// and component widths, `features` on an SAE of mlp_activation.
// ---------------------------------------------------------------------------------------------

/// Exit code 1, one stderr line containing every needle, no panic.
fn assert_fails(args: &[&str], needles: &[&str]) {
    let o = vene(args);
    assert_eq!(o.status.code(), Some(1), "{args:?}");
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

/// An argument error clap reports itself: exit code 2, every needle in its message, no panic.
fn assert_clap_fails(args: &[&str], needles: &[&str]) {
    let o = vene(args);
    assert_eq!(o.status.code(), Some(2), "{args:?}");
    let err = String::from_utf8(o.stderr).unwrap();
    for needle in needles {
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
}

fn patch_args<'a>(m: &'a str, base: &'a str, source: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["patch", "--model", m, "--base", base, "--source", source];
    args.extend_from_slice(extra);
    args
}

/// The last column ("Δ logit diff") of each row of a per-layer table.
fn last_column(text: &str) -> Vec<f32> {
    table_rows(text)
        .iter()
        .map(|r| r.last().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn patch_position_all_heat_map_cells_are_the_single_position_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    let (base, source) = ("the cat sat on", "a dog ran to");
    let map = stdout(&vene(&patch_args(m, base, source, &["--position", "all"])));
    assert!(map.contains("Δ logit diff"), "{map}");
    // Token strings head the columns.
    let header = map.lines().find(|l| l.starts_with("| layer")).unwrap();
    assert!(header.contains("1 \"cat\"/\"dog\""), "{header}");
    let rows = table_rows(&map);
    assert_eq!(rows.len(), 2, "{map}");
    for p in 0..4 {
        let single = stdout(&vene(&patch_args(
            m,
            base,
            source,
            &["--position", &p.to_string()],
        )));
        let deltas = table_rows(&single);
        for (layer, row) in rows.iter().enumerate() {
            assert_eq!(row[0], layer.to_string());
            assert_eq!(row[p + 1], deltas[layer][4], "layer {layer} position {p}");
        }
    }
    // The last block's output at an earlier position cannot reach the last position's logits.
    for cell in &rows[1][1..4] {
        assert_eq!(cell.parse::<f32>().unwrap(), 0.0, "{map}");
    }
    // Negative positions count from the end.
    assert_eq!(
        stdout(&vene(&patch_args(m, base, source, &["--position", "-3"]))),
        stdout(&vene(&patch_args(m, base, source, &["--position", "1"])))
    );
}

#[test]
fn patch_source_base_position_pair() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    // At the last layer, source position 1 patched into the base's last position gives the
    // logits the source has at position 1: those of the source cut after its second token.
    let pair = stdout(&vene(&patch_args(
        m,
        "the cat sat",
        "a dog ran",
        &["--layer", "1", "--position", "1:-1"],
    )));
    let cut = stdout(&vene(&patch_args(
        m,
        "the cat sat",
        "a dog",
        &["--layer", "1"],
    )));
    assert!(
        pair.contains("source position 1 into base position 2"),
        "{pair}"
    );
    assert_eq!(table_rows(&pair), table_rows(&cut));
    assert!(!table_rows(&pair).is_empty());
}

#[test]
fn patch_pairs_file_rows_and_mean() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    let file = tmp.path().join("pairs.tsv");
    std::fs::write(
        &file,
        "# base\tsource\nthe cat sat\ta dog ran\n\nred house and\tgreen tree to\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let text = stdout(&vene(&["patch", "--model", m, "--pairs", f]));
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 3, "{text}");
    assert_eq!((rows[0][0].as_str(), rows[1][0].as_str()), ("2", "4"));
    assert_eq!(rows[2][0], "mean");
    // Each pair's row is that pair's own run.
    for (row, (b, s)) in rows.iter().zip([
        ("the cat sat", "a dog ran"),
        ("red house and", "green tree to"),
    ]) {
        let single = last_column(&stdout(&vene(&patch_args(m, b, s, &[]))));
        let cells: Vec<f32> = row[3..].iter().map(|c| c.parse().unwrap()).collect();
        assert_eq!(cells, single, "{row:?}");
    }
    for layer in 0..2 {
        let a: f32 = rows[0][3 + layer].parse().unwrap();
        let b: f32 = rows[1][3 + layer].parse().unwrap();
        let mean: f32 = rows[2][3 + layer].parse().unwrap();
        assert!((mean - (a + b) / 2.0).abs() < 1.5e-4, "{text}");
    }
    // Heat maps per pair, and their mean (same lengths here).
    let maps = stdout(&vene(&[
        "patch",
        "--model",
        m,
        "--pairs",
        f,
        "--position",
        "all",
        "--layer",
        "0",
    ]));
    assert!(maps.contains("mean over 2 pairs"), "{maps}");
    // Three tables (two pairs and the mean), one row each: layer 0.
    let cells: Vec<Vec<f32>> = table_rows(&maps)
        .iter()
        .filter(|r| r[0] == "0")
        .map(|r| r[1..].iter().map(|c| c.parse().unwrap()).collect())
        .collect();
    assert_eq!(cells.len(), 3, "{maps}");
    assert_eq!(cells[2].len(), 3, "{maps}");
    for ((mean, a), b) in cells[2].iter().zip(&cells[0]).zip(&cells[1]) {
        assert!((mean - (a + b) / 2.0).abs() < 1.5e-4, "{maps}");
    }
    // Errors name the file and the line.
    std::fs::write(&file, "the cat\ta dog\nthe cat a dog\n").unwrap();
    assert_fails(
        &["patch", "--model", m, "--pairs", f],
        &["pairs.tsv:2:", "base<TAB>source"],
    );
    std::fs::write(&file, "the cat\ta dog\nthe\ta dog ran\n").unwrap();
    assert_fails(
        &["patch", "--model", m, "--pairs", f, "--position", "all"],
        &["pairs.tsv:2:", "same length"],
    );
    std::fs::write(&file, "# nothing\n\n").unwrap();
    assert_fails(&["patch", "--model", m, "--pairs", f], &["no pairs"]);
    assert_clap_fails(
        &["patch", "--model", m, "--pairs", f, "--base", "the"],
        &["--base", "cannot be used with", "--pairs"],
    );
    // Neither prompts nor a pairs file: the missing arguments are named.
    assert_clap_fails(&["patch", "--model", m], &["not provided", "--base"]);
}

/// The change of the logit difference from patching `head` of `component` at `layer`, source
/// position `pos` into the same base position, computed with the library.
fn head_patch_delta(model: &Path, base: &[u32], source: &[u32], head: usize, pos: usize) -> f32 {
    use candle_core::{DType, Device, Tensor};
    use vene::hooks::{Component, Unit};
    use vene::models::{LanguageModel, Model};
    use vene::{
        ForwardRequest, IntervenableConfig, IntervenableModel, LogitsAt, RepresentationConfig,
        UnitLoc, UnitLocations,
    };
    let lm = Model::from_dir(model, DType::F32, &Device::Cpu).unwrap();
    let ids = |x: &[u32]| Tensor::new(x, &Device::Cpu).unwrap().unsqueeze(0).unwrap();
    let last = |x: &[u32]| -> Vec<f32> {
        let l = lm
            .forward(&ids(x), None, &mut vene::hooks::NoHooks)
            .unwrap();
        l.get(0)
            .unwrap()
            .get(x.len() - 1)
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let argmax = |v: &[f32]| (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap();
    let (bl, sl) = (last(base), last(source));
    let (bt, st) = (argmax(&bl), argmax(&sl));
    let repr = RepresentationConfig::new(1, Component::HeadAttentionValueOutput).unit(Unit::HPos);
    let iv = IntervenableModel::new(IntervenableConfig::new(vec![repr]), lm.clone()).unwrap();
    let loc = || Some(UnitLoc::head_positions(vec![vec![head]], vec![vec![pos]]));
    let out = iv
        .forward(
            &ForwardRequest::new(ids(base))
                .source(ids(source))
                .locations(UnitLocations::full(Some(vec![loc()]), vec![loc()]))
                .logits(LogitsAt::Last),
        )
        .unwrap();
    let p: Vec<f32> = out
        .intervened
        .get(0)
        .unwrap()
        .get(0)
        .unwrap()
        .to_vec1()
        .unwrap();
    (p[st] - p[bt]) - (bl[st] - bl[bt])
}

#[test]
fn patch_one_head_by_head_or_site() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    let (base, source) = ("the cat sat", "a dog ran");
    let by_site = stdout(&vene(&patch_args(m, base, source, &["--site", "L1H1"])));
    let by_head = stdout(&vene(&patch_args(
        m,
        base,
        source,
        &[
            "--layer",
            "1",
            "--head",
            "1",
            "--component",
            "head_attention_value_output",
        ],
    )));
    assert_eq!(by_site, by_head);
    assert!(
        by_site.contains("patching head_attention_value_output head 1"),
        "{by_site}"
    );
    // The Δ logit diff the CLI prints is the library's, head by head (ids: WORDS order + 1).
    let delta = |text: &str| -> f32 {
        let line = text.lines().find(|l| l.contains("Δ logit diff")).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    for head in 0..2 {
        let text = stdout(&vene(&patch_args(
            m,
            base,
            source,
            &["--site", &format!("L1H{head}")],
        )));
        let want = head_patch_delta(&model, &[1, 2, 3], &[5, 8, 9], head, 2);
        assert!(
            (delta(&text) - want).abs() < 1e-4,
            "head {head}: {text} vs {want}"
        );
    }
    // A head of the query projection, every layer.
    let q = stdout(&vene(&patch_args(
        m,
        base,
        source,
        &["--head", "0", "--component", "head_query_output"],
    )));
    assert_eq!(table_rows(&q).len(), 2, "{q}");
}

#[test]
fn patch_errors_name_the_valid_ranges() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    let (b, s) = ("the cat sat", "a dog ran");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["--head", "5"],
            vec!["head 5 is out of range", "2 heads (0..=1)"],
        ),
        (
            vec!["--site", "L9H0"],
            vec!["layer 9 is out of range", "2 layers (0..=1)"],
        ),
        (vec!["--site", "5.3"], vec!["--site", "L5H3"]),
        (
            vec!["--head", "0", "--component", "block_output"],
            vec!["not a head component"],
        ),
        (
            vec!["--component", "head_value_output"],
            vec!["needs a head", "--head N (0..=1)"],
        ),
        (vec!["--top-k", "0"], vec!["--top-k must be at least 1"]),
        (
            vec!["--position", "3"],
            vec!["position 3 is out of range", "has 3 tokens"],
        ),
        (
            vec!["--position", "-4"],
            vec!["position -4 is out of range"],
        ),
        (vec!["--position", "x"], vec!["--position", "S:B"]),
    ];
    for (extra, needles) in cases {
        assert_fails(&patch_args(m, b, s, &extra), &needles);
    }
    assert_clap_fails(
        &patch_args(m, b, s, &["--site", "L1", "--layer", "0"]),
        &["--layer", "cannot be used with", "--site"],
    );
    assert_fails(
        &patch_args(m, b, "a dog", &["--position", "all"]),
        &["same length", "3 tokens", "source 2"],
    );
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn train_args<'a>(m: &'a str, data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train-sae",
        "--model",
        m,
        "--layer",
        "1",
        "--data",
        data,
        "--out",
        out,
        "--steps",
        "5",
        "--expansion",
        "2",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn train_sae_chunks_lines_longer_than_the_context() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    // 40 tokens on one line: more than the model's 32 positions.
    let words: Vec<&str> = WORDS.split(' ').cycle().take(40).collect();
    let data = tmp.path().join("long.txt");
    std::fs::write(&data, format!("{}\n\nthe cat sat\n", words.join(" "))).unwrap();
    let d = data.to_str().unwrap();
    let out = tmp.path().join("sae");
    let o = vene(&train_args(m, d, out.to_str().unwrap(), &[]));
    let text = stdout(&o);
    assert!(
        text.contains(
            "trained on 43 activations of width 16 (2 lines in 3 chunks of at most 32 tokens)"
        ),
        "{text}"
    );
    // No progress bar when stderr is not a terminal.
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out2 = tmp.path().join("sae2");
    let text = stdout(&vene(&train_args(
        m,
        d,
        out2.to_str().unwrap(),
        &["--context-length", "10"],
    )));
    assert!(
        text.contains(
            "trained on 43 activations of width 16 (2 lines in 5 chunks of at most 10 tokens)"
        ),
        "{text}"
    );
    // With a BOS, every chunk starts with it: 40 tokens in chunks of BOS + 9 make 5 chunks
    // (45 activations), `the cat sat` one of 4.
    let tok_path = model.join("tokenizer.json");
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&tok_path).unwrap()).unwrap();
    tok["model"]["vocab"]["<|endoftext|>"] = 63.into();
    std::fs::write(&tok_path, tok.to_string()).unwrap();
    let out_bos = tmp.path().join("sae-bos");
    let text = stdout(&vene(&train_args(
        m,
        d,
        out_bos.to_str().unwrap(),
        &["--context-length", "10", "--prepend-bos"],
    )));
    assert!(
        text.contains(
            "trained on 49 activations of width 16 (2 lines in 6 chunks of at most 10 tokens)"
        ),
        "{text}"
    );
    let out3 = tmp.path().join("sae3");
    assert_fails(
        &train_args(m, d, out3.to_str().unwrap(), &["--context-length", "33"]),
        &["--context-length 33", "32 positions"],
    );
    assert_fails(
        &train_args(m, d, out3.to_str().unwrap(), &["--context-length", "0"]),
        &["--context-length must be at least 1"],
    );
    assert!(!out3.exists());
}

#[test]
fn sae_of_mlp_activation_has_its_width_and_features_reads_it() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    let data = tmp.path().join("data.txt");
    std::fs::write(&data, "the cat sat on a mat\nred house and green tree\n").unwrap();
    let d = data.to_str().unwrap();
    let sae = tmp.path().join("sae-mlp");
    let s = sae.to_str().unwrap();
    let text = stdout(&vene(&train_args(
        m,
        d,
        s,
        &["--component", "mlp_activation"],
    )));
    // n_inner null: 4 * n_embd = 64.
    assert!(
        text.contains("trained on 11 activations of width 64"),
        "{text}"
    );
    assert!(text.contains("128 latents"), "{text}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sae.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["d_in"], 64);
    assert_eq!(cfg["d_sae"], 128);
    assert_eq!(cfg["hook_name"], "blocks.1.mlp.hook_post");
    let features = |extra: &[&'static str]| {
        let mut args: Vec<String> = [
            "features",
            "--model",
            m,
            "--sae",
            s,
            "--prompt",
            "the cat sat",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        args.extend(extra.iter().map(|a| a.to_string()));
        args
    };
    let with_mlp = features(&["--component", "mlp_activation", "--top-k", "2"]);
    let text = stdout(&vene(&refs(&with_mlp)));
    assert!(
        text.starts_with("SAE latents at layer 1 mlp_activation (128 latents)"),
        "{text}"
    );
    let rows = table_rows(&text);
    assert_eq!(rows.len(), 3);
    for row in &rows {
        let active: usize = row[2].parse().unwrap();
        let shown = if row[3].is_empty() {
            0
        } else {
            row[3].split(", ").count()
        };
        assert_eq!(shown, active.min(2), "{row:?}");
    }
    // Without --component, the SAE's own site (its hook_name, `mlp.hook_post`) is used.
    let o = vene(&refs(&features(&["--top-k", "2"])));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(stdout(&o), text);
    assert!(o.stderr.is_empty());
    // Read at the residual stream, the widths differ: a clear error naming the component.
    assert_fails(
        &refs(&features(&["--component", "block_output"])),
        &[
            "width 64",
            "block_output of the model has width 16",
            "--component mlp_activation",
        ],
    );
    assert_fails(
        &[
            "steer",
            "--model",
            m,
            "--sae",
            s,
            "--latent",
            "0",
            "--scale",
            "1",
            "--prompt",
            "the",
            "--component",
            "block_output",
        ],
        &["width 64", "width 16"],
    );
    // Head components are refused by train-sae before any work.
    let out = tmp.path().join("sae-head");
    assert_fails(
        &train_args(
            m,
            d,
            out.to_str().unwrap(),
            &["--component", "head_query_output"],
        ),
        &["head_query_output", "query_output"],
    );
    assert!(!out.exists());
}

/// The fixture tiny Llama (rotary positions, `max_position_embeddings` 32, intermediate 40)
/// with the word-level tokenizer of [`model_dir`].
fn llama_dir(root: &Path) -> PathBuf {
    let gpt2 = model_dir(root);
    let dir = root.join("llama");
    std::fs::create_dir_all(&dir).unwrap();
    let fixture = Path::new(FIXTURE).with_file_name("tiny-llama");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
    }
    std::fs::copy(gpt2.join("tokenizer.json"), dir.join("tokenizer.json")).unwrap();
    dir
}

#[test]
fn train_sae_on_a_rotary_model_chunks_to_its_configured_context() {
    let tmp = tempfile::tempdir().unwrap();
    let model = llama_dir(tmp.path());
    let m = model.to_str().unwrap();
    let words: Vec<&str> = WORDS.split(' ').cycle().take(40).collect();
    let data = tmp.path().join("long.txt");
    std::fs::write(&data, format!("{}\n", words.join(" "))).unwrap();
    let d = data.to_str().unwrap();
    let out = tmp.path().join("sae");
    // max_position_embeddings 32: two chunks; mlp_activation is intermediate_size wide.
    let text = stdout(&vene(&train_args(
        m,
        d,
        out.to_str().unwrap(),
        &["--component", "mlp_activation"],
    )));
    assert!(
        text.contains(
            "trained on 40 activations of width 40 (1 lines in 2 chunks of at most 32 tokens)"
        ),
        "{text}"
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["d_in"], 40);
    // A rotary model takes a longer chunk when asked.
    let out2 = tmp.path().join("sae2");
    let text = stdout(&vene(&train_args(
        m,
        d,
        out2.to_str().unwrap(),
        &["--context-length", "64"],
    )));
    assert!(
        text.contains(
            "trained on 40 activations of width 16 (1 lines in 1 chunks of at most 64 tokens)"
        ),
        "{text}"
    );
}

/// Every `vene ...` command in the README's shell blocks is one the binary accepts: each is run
/// with `--help` appended, which clap answers with exit code 0 only when every argument before
/// it is known and every value parses (placeholders `<...>` become `0`).
#[test]
fn readme_commands_parse() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let mut in_sh = false;
    let mut checked = 0;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        let line = line.split(" # ").next().unwrap().trim();
        if !in_sh || !line.starts_with("vene ") {
            continue;
        }
        let mut text = String::new();
        let mut rest = line;
        while let Some(start) = rest.find('<') {
            let end = rest[start..]
                .find('>')
                .map_or(rest.len(), |e| start + e + 1);
            text.push_str(&rest[..start]);
            text.push('0');
            rest = &rest[end..];
        }
        text.push_str(rest);
        let mut words = shell_words(&text);
        words.push("--help".to_string());
        let o = Command::new(env!("CARGO_BIN_EXE_vene"))
            .args(&words[1..])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "README: {line}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 12, "only {checked} README commands found");
}

/// An SAE whose files name `hook_resid_pre` is applied at `block_input` by default; another
/// site asked for is used, with a warning naming the SAE's own.
#[test]
fn features_default_to_the_saes_own_site() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let m = model.to_str().unwrap();
    let data = tmp.path().join("data.txt");
    std::fs::write(&data, format!("{WORDS}\n")).unwrap();
    let sae = tmp.path().join("sae-pre");
    let o = vene(&train_args(
        m,
        data.to_str().unwrap(),
        sae.to_str().unwrap(),
        &["--component", "block_input"],
    ));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sae.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["hook_name"], "blocks.1.hook_resid_pre");
    let s = sae.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "features",
            "--model",
            m,
            "--sae",
            s,
            "--prompt",
            "the cat sat",
        ];
        args.extend_from_slice(extra);
        vene(&args)
    };
    let own = run(&[]);
    assert_eq!(own.status.code(), Some(0));
    let own_text = stdout(&own);
    assert!(
        own_text.starts_with("SAE latents at layer 1 block_input"),
        "{own_text}"
    );
    assert!(own.stderr.is_empty());
    // block_output of layer 0 reads the same activations: same latents, no warning.
    let same = run(&["--layer", "0", "--component", "block_output"]);
    assert!(same.stderr.is_empty());
    assert_eq!(table_rows(&stdout(&same)), table_rows(&own_text));
    // block_output of layer 1 is another site: used as asked, with a warning.
    let other = run(&["--component", "block_output"]);
    assert_eq!(other.status.code(), Some(0));
    assert!(stdout(&other).starts_with("SAE latents at layer 1 block_output"));
    let warning = String::from_utf8_lossy(&other.stderr);
    assert!(
        warning.contains("warning: the SAE was trained at blocks.1.hook_resid_pre"),
        "{warning}"
    );
    assert_ne!(table_rows(&stdout(&other)), table_rows(&own_text));
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
    // train-sae records the choice in SAELens's `prepend_bos`, so features follows it; no
    // flag, no key (the tokenizer's own behaviour).
    let data = tmp.path().join("bos.txt");
    std::fs::write(
        &data,
        "the cat sat
",
    )
    .unwrap();
    for (flag, want) in [
        (Some("--prepend-bos"), Some(true)),
        (Some("--no-prepend-bos"), Some(false)),
        (None, None),
    ] {
        let out = tmp.path().join(format!("sae-bos-{want:?}"));
        let mut a = vec![
            "train-sae",
            "--model",
            m,
            "--layer",
            "1",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--steps",
            "2",
        ];
        a.extend(flag);
        let o = vene_env(&a, tmp.path(), &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("cfg.json")).unwrap()).unwrap();
        assert_eq!(cfg["prepend_bos"].as_bool(), want, "{flag:?}");
    }
}

/// The README's snippet for depending on vene names the candle version the workspace builds
/// on and the profile setting the workspace itself uses; the README and the tutorial's header
/// give the same run time.
#[test]
fn readme_dependency_snippet_and_tutorial_time_match_the_sources() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let read = |p: &str| std::fs::read_to_string(format!("{root}/{p}")).unwrap();
    let (readme, cargo) = (read("README.md"), read("Cargo.toml"));
    let snippet = readme
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("a toml block in the README");
    let version = |text: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with("candle-core ="))
            .and_then(|l| l.split('"').nth(1))
            .map(str::to_string)
    };
    assert_eq!(version(snippet), version(&cargo));
    assert!(version(snippet).is_some());
    let profile = "[profile.dev.package.\"*\"]\nopt-level = 3";
    assert!(snippet.contains(profile), "{snippet}");
    assert!(cargo.contains(profile));
    let tutorial = read("examples/autoencoder_tutorial.rs");
    let time = |text: &str| {
        text.split("about ")
            .skip(1)
            .find_map(|s| s.split_once(" s ").map(|(n, _)| n.to_string()))
            .filter(|n| n.parse::<u32>().is_ok())
    };
    assert_eq!(time(&readme), time(tutorial.lines().nth(1).unwrap_or("")));
    assert!(time(&readme).is_some());
}

/// `vene train-sae` on layer 1 of `model` over `data` into `out`: `steps` steps, expansion 2,
/// lr 1e-2, then `flags` (the architecture and its settings).
fn train_small_sae(model: &Path, data: &Path, out: &Path, steps: &str, flags: &[&str]) -> Output {
    let mut a = vec![
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
        steps,
        "--expansion",
        "2",
        "--lr",
        "1e-2",
    ];
    a.extend_from_slice(flags);
    vene(&a)
}

#[test]
fn train_sae_trains_other_architectures_and_saves_them() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let data = tmp.path().join("data.txt");
    std::fs::write(
        &data,
        "the cat sat on a mat\nthe dog ran to the park\nred house and green tree\n",
    )
    .unwrap();
    let train = |arch: &str, extra: &[&str]| {
        let out = tmp.path().join(arch);
        let flags = [&["--architecture", arch][..], extra].concat();
        (train_small_sae(&model, &data, &out, "20", &flags), out)
    };
    // topk without --k, and --sparsify-out for another kind, are refused before training
    let (o, _) = train("batchtopk", &[]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--k"));
    let (o, _) = train("gated", &["--sparsify-out", "x"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--sparsify-out"));
    let sparsify = tmp.path().join("sparsify").join("layers.1");
    let (o, out) = train(
        "topk",
        &[
            "--k",
            "4",
            "--normalize-activations",
            "--sparsify-out",
            sparsify.to_str().unwrap(),
        ],
    );
    let text = stdout(&o);
    assert!(
        text.contains("trained a topk SAE on 17 activations of width 16"),
        "{text}"
    );
    assert!(text.contains("L0 4.00"), "{text}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["architecture"], "topk");
    assert_eq!(cfg["k"], 4);
    assert_eq!(cfg["d_sae"], 32);
    let sp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sparsify.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(sp["k"], 4);
    assert!(sparsify.join("sae.safetensors").is_file());

    for (arch, extra, saved) in [
        (
            "jumprelu",
            vec!["--bandwidth", "0.05", "--init-threshold", "0.05"],
            "jumprelu",
        ),
        ("batchtopk", vec!["--k", "4"], "jumprelu"),
        ("gated", vec!["--l1", "0.01"], "gated"),
        (
            "matryoshka",
            vec!["--k", "4", "--matryoshka-widths", "8,16"],
            "jumprelu",
        ),
    ] {
        let (o, out) = train(arch, &extra);
        let text = stdout(&o);
        assert!(text.contains(&format!("trained a {arch} SAE")), "{text}");
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("cfg.json")).unwrap()).unwrap();
        assert_eq!(cfg["architecture"], saved, "{arch}");
        assert!(cfg["metadata"]["training_architecture"].is_string());
    }
}

/// `--checkpoint-every` + `--resume`: 3 steps with a checkpoint, then resumed to 6, save the
/// same weights, byte for byte, as 6 steps straight.
#[test]
fn train_sae_resumes_from_a_checkpoint_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let data = tmp.path().join("data.txt");
    std::fs::write(
        &data,
        "the cat sat on a mat\nthe dog ran to the park\nred house and green tree\n",
    )
    .unwrap();
    let ckpt = tmp.path().join("ckpt");
    let metrics = tmp.path().join("metrics.jsonl");
    let train = |out: &str, steps: &str, extra: &[&str]| {
        let out = tmp.path().join(out);
        let jumprelu = [
            "--architecture",
            "jumprelu",
            "--bandwidth",
            "0.5",
            "--normalize-activations",
            "--seed",
            "5",
        ];
        let flags = [&jumprelu[..], extra].concat();
        (train_small_sae(&model, &data, &out, steps, &flags), out)
    };
    let (o, straight) = train("straight", "6", &[]);
    stdout(&o);
    let (o, _) = train(
        "first",
        "3",
        &[
            "--checkpoint-every",
            "3",
            "--checkpoint-dir",
            ckpt.to_str().unwrap(),
            "--metrics",
            metrics.to_str().unwrap(),
        ],
    );
    stdout(&o);
    assert!(ckpt.join("trainer_state.json").is_file());
    let (o, resumed) = train(
        "resumed",
        "6",
        &[
            "--resume",
            ckpt.to_str().unwrap(),
            "--metrics",
            metrics.to_str().unwrap(),
        ],
    );
    let text = stdout(&o);
    // the metrics file holds steps 1..=6: the stopped run's, then the resumed ones
    let steps: Vec<u64> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, vec![1, 2, 3, 4, 5, 6]);
    assert!(text.contains("6 steps"), "{text}");
    let weights = |dir: &Path| std::fs::read(dir.join("sae_weights.safetensors")).unwrap();
    assert_eq!(weights(&resumed), weights(&straight));
    assert_ne!(weights(&tmp.path().join("first")), weights(&straight));
    // a folder that is not a checkpoint is refused before any work, and relu (pyvene's
    // AutoencoderLayer) does not resume another architecture's checkpoint
    let (o, _) = train("bad", "6", &["--resume", tmp.path().to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a checkpoint folder"));
    let o = vene(&[
        "train-sae",
        "--model",
        model.to_str().unwrap(),
        "--layer",
        "1",
        "--data",
        data.to_str().unwrap(),
        "--out",
        tmp.path().join("relu").to_str().unwrap(),
        "--resume",
        ckpt.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("vene-sae-checkpoint") && err.contains("vene-autoencoder-layer-checkpoint"),
        "{err}"
    );
    assert!(!tmp.path().join("relu").exists());
}

/// The default `--architecture relu` (pyvene's AutoencoderLayer) checkpoints and resumes too:
/// 4 steps with a checkpoint at 2, resumed from it, save the bytes of 4 steps straight.
#[test]
fn train_sae_relu_resumes_from_a_checkpoint_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let data = tmp.path().join("data.txt");
    std::fs::write(&data, "the cat sat on a mat\nthe dog ran to the park\n").unwrap();
    let ckpt = tmp.path().join("ckpt");
    let train = |out: &str, steps: &str, extra: &[&str]| {
        let out = tmp.path().join(out);
        let flags = [&["--seed", "3"][..], extra].concat();
        (train_small_sae(&model, &data, &out, steps, &flags), out)
    };
    let (o, straight) = train("straight", "4", &[]);
    stdout(&o);
    let dir = ckpt.to_str().unwrap();
    let (o, first) = train(
        "first",
        "2",
        &["--checkpoint-every", "2", "--checkpoint-dir", dir],
    );
    stdout(&o);
    assert!(ckpt.join("checkpoint.safetensors").is_file());
    let (o, resumed) = train("resumed", "4", &["--resume", dir]);
    assert!(stdout(&o).contains("4 steps"));
    let weights = |dir: &Path| std::fs::read(dir.join("sae_weights.safetensors")).unwrap();
    assert_eq!(weights(&resumed), weights(&straight));
    assert_ne!(weights(&first), weights(&straight));
}

/// `--stream`: activations computed while training through a bounded shuffle buffer. The
/// buffer never holds more than its rows plus one line's tokens; a stopped run resumes
/// byte-exactly (for the default relu and for topk); a text with no example is refused.
#[test]
fn train_sae_streams_activations_through_a_bounded_buffer_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let data = tmp.path().join("data.txt");
    let lines = "the cat sat on a mat\nthe dog ran to the park\nred house and green tree\n";
    std::fs::write(&data, lines).unwrap();
    let ckpt = tmp.path().join("ckpt");
    let dir = ckpt.to_str().unwrap();
    let train = |out: &str, steps: &str, extra: &[&str]| {
        let out = tmp.path().join(out);
        let stream = ["--stream", "--shuffle-buffer", "6", "--batch-size", "4"];
        let flags = [&stream[..], extra].concat();
        (train_small_sae(&model, &data, &out, steps, &flags), out)
    };
    let weights = |dir: &Path| std::fs::read(dir.join("sae_weights.safetensors")).unwrap();
    for arch in [
        &["--architecture", "relu"][..],
        &["--architecture", "topk", "--k", "2"],
    ] {
        let _ = std::fs::remove_dir_all(&ckpt);
        let name = arch[1];
        let (o, straight) = train(&format!("{name}-straight"), "6", arch);
        let text = stdout(&o);
        assert!(text.contains("streamed from"), "{text}");
        // at most the buffer (6 rows) plus one line (at most 7 tokens with its BOS) held
        let held: usize = text
            .split("at most ")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no `at most N held` in {text}"));
        assert!((6..=13).contains(&held), "{held} rows held: {text}");
        let ckpt_flags = [arch, &["--checkpoint-every", "3", "--checkpoint-dir", dir]].concat();
        let (o, first) = train(&format!("{name}-first"), "3", &ckpt_flags);
        stdout(&o);
        let resume_flags = [arch, &["--resume", dir]].concat();
        let (o, resumed) = train(&format!("{name}-resumed"), "6", &resume_flags);
        assert!(stdout(&o).contains("6 steps"));
        assert_eq!(weights(&resumed), weights(&straight), "{name}");
        assert_ne!(weights(&first), weights(&straight), "{name}");
    }
    // a stream over a text without examples is refused, and nothing is written
    let blank = tmp.path().join("blank.txt");
    std::fs::write(&blank, "\n  \n").unwrap();
    let out = tmp.path().join("blank-out");
    let o = train_small_sae(&model, &blank, &out, "2", &["--stream"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no text"));
    assert!(!out.exists());
}

/// The schedule and dead-latent flags reach both trainers (pyvene's layer and the
/// architectures): the logged learning rates follow --lr-warm-up-steps, --lr-decay-steps and
/// --lr-end by hand; `standard` is SAELens's ReLU SAE; flags an architecture has no use for
/// are refused before any work.
#[test]
fn train_sae_schedule_flags_reach_every_trainer_and_misplaced_flags_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let data = tmp.path().join("data.txt");
    std::fs::write(&data, "the cat sat on a mat\nthe dog ran to the park\n").unwrap();
    let metrics = tmp.path().join("metrics.jsonl");
    let schedule = [
        "--lr-warm-up-steps",
        "2",
        "--lr-decay-steps",
        "2",
        "--lr-end",
        "1e-3",
        "--dead-window",
        "1",
        "--metrics",
        metrics.to_str().unwrap(),
    ];
    let runs: [&[&str]; 3] = [
        &["--b-dec-init", "zeros"],
        &[
            "--architecture",
            "standard",
            "--resample-every",
            "2",
            "--b-dec-init",
            "mean",
        ],
        &["--architecture", "topk", "--k", "2", "--aux-k", "3"],
    ];
    for (i, extra) in runs.into_iter().enumerate() {
        let out = tmp.path().join(format!("sae{i}"));
        let o = train_small_sae(&model, &data, &out, "4", &[&schedule[..], extra].concat());
        stdout(&o);
        // lr 1e-2: warm-up 2 steps (half, full), then the last 2 steps decay to 1e-3
        let lrs: Vec<f64> = std::fs::read_to_string(&metrics)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"]
                    .as_f64()
                    .unwrap()
            })
            .collect();
        let expected = [5e-3, 1e-2, 5.5e-3, 1e-3];
        assert_eq!(lrs.len(), 4, "{extra:?}");
        for (got, want) in lrs.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{extra:?}: {lrs:?}");
        }
        let cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("cfg.json")).unwrap()).unwrap();
        let arch = ["standard", "standard", "topk"][i];
        assert_eq!(cfg["architecture"], arch, "{extra:?}");
    }
    let refused: [(&[&str], &str); 3] = [
        (
            &[
                "--architecture",
                "topk",
                "--k",
                "2",
                "--resample-every",
                "5",
            ],
            "--resample-every",
        ),
        (&["--aux-k", "3"], "--aux-k"),
        (&["--b-dec-init", "geometric-median"], "geometric-median"),
    ];
    for (flags, named) in refused {
        let out = tmp.path().join("refused");
        let o = train_small_sae(&model, &data, &out, "4", flags);
        assert_eq!(o.status.code(), Some(1), "{flags:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(named), "{flags:?}: {err}");
        assert!(!out.exists());
    }
}
