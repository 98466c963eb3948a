//! `vene collect`: activations into an on-disk store; 3 shard jobs make the store 1 job makes.

mod common;

use common::{model_dir, stdout, vene};
use std::collections::BTreeMap;
use std::path::Path;

use vene::autoencoder::store::{merge_manifests, ReadOptions, StoreReader};

/// Runs `vene collect` with `--context-length 4 --rows-per-shard 5`, `--sequences-per-block 2`
/// unless `args` gives it, and `args` (input, sites, more flags).
fn run_collect(model: &Path, out: &Path, shard: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec![
        "collect",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--shard",
        shard,
        "--context-length",
        "4",
        "--rows-per-shard",
        "5",
    ];
    if !args.contains(&"--sequences-per-block") {
        all.extend_from_slice(&["--sequences-per-block", "2"]);
    }
    all.extend_from_slice(args);
    vene(&all)
}

/// `vene collect` of blocks.1.hook_resid_post over the text file `text`, which must succeed.
fn collect(model: &Path, text: &Path, out: &Path, shard: &str) -> String {
    let args = [
        "--site",
        "blocks.1.hook_resid_post",
        "--text",
        text.to_str().unwrap(),
    ];
    stdout(&run_collect(model, out, shard, &args))
}

/// The `.safetensors` files of a store folder, by name.
fn shard_files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// The store's rows in its canonical shard order, as f32 values.
fn canonical_rows(dir: &Path) -> Vec<Vec<f32>> {
    let m = StoreReader::open(dir).unwrap().manifest().clone();
    let mut rows = Vec::new();
    for s in &m.shards {
        let t = candle_core::safetensors::load(dir.join(&s.file), &candle_core::Device::Cpu)
            .unwrap()
            .remove("activations")
            .unwrap();
        rows.extend(t.to_vec2::<f32>().unwrap());
    }
    rows
}

/// Every row of the store, as bit patterns, with its multiplicity.
fn row_multiset(dir: &Path) -> BTreeMap<Vec<u32>, usize> {
    let reader = StoreReader::open(dir).unwrap();
    let opts = ReadOptions {
        batch_size: 8,
        buffer_rows: 8,
        seed: 0,
    };
    let mut rows = BTreeMap::new();
    for batch in reader.epoch(&opts, 0) {
        for row in batch.unwrap().to_vec2::<f32>().unwrap() {
            *rows
                .entry(row.iter().map(|v| v.to_bits()).collect())
                .or_insert(0) += 1;
        }
    }
    rows
}

/// `vene train-sae` of a TopK SAE (k 2, expansion 2) from `store` for `steps` steps, in batches
/// of 4 through a shuffle buffer of 6 rows, with `extra` flags.
fn train_topk_from_store(
    model: &Path,
    store: &Path,
    out: &Path,
    steps: &str,
    extra: &[&str],
) -> std::process::Output {
    let mut args = vec![
        "train-sae",
        "--model",
        model.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--architecture",
        "topk",
        "--k",
        "2",
        "--steps",
        steps,
        "--batch-size",
        "4",
        "--shuffle-buffer",
        "6",
        "--expansion",
        "2",
    ];
    args.extend_from_slice(extra);
    vene(&args)
}

/// The corpus of the tests: 19 tokens over 4 examples (a blank line skipped), cut into
/// sequences of at most 4 tokens: 4+2, 4+2, 4+1, 2, i.e. 7 sequences, 4 blocks of 2.
const CORPUS: &str =
    "the cat sat on a mat\nthe dog ran to the park\n\nred house and green tree\nbig tree\n";

/// The acceptance test: a store built by 3 jobs equals the store built by 1 (the same
/// shard files, byte for byte, and the same canonical shard list), and training on either
/// gives the same SAE, byte for byte.
#[test]
fn three_shard_jobs_make_the_store_one_job_makes_and_the_same_sae() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let text = tmp.path().join("data.txt");
    std::fs::write(&text, CORPUS).unwrap();
    let one = tmp.path().join("one");
    let said = collect(&model, &text, &one, "0/1");
    assert!(
        said.contains("job 0/1: 7 of 7 sequences (4 of 4 blocks of 2) from 4 examples"),
        "{said}"
    );
    assert!(
        said.contains("wrote 19 rows of blocks.1.hook_resid_post (width 16) in 6 shards"),
        "{said}"
    );
    let three = tmp.path().join("three");
    let said: Vec<String> = (0..3)
        .map(|i| collect(&model, &text, &three, &format!("{i}/3")))
        .collect();
    // job 0 owns blocks 0 and 3 (sequences 0, 1 and 6), job 1 block 1, job 2 block 2
    assert!(
        said[0].contains("job 0/3: 3 of 7 sequences (2 of 4 blocks of 2)"),
        "{}",
        said[0]
    );
    assert!(said[1].contains("wrote 6 rows"), "{}", said[1]);
    assert!(said[2].contains("wrote 5 rows"), "{}", said[2]);
    let merged = merge_manifests(&three).unwrap();
    let single = StoreReader::open(&one).unwrap().manifest().clone();
    assert_eq!((single.total_rows, merged.total_rows), (19, 19));
    assert_eq!(
        (merged.d, merged.site.as_str(), merged.writers),
        (16, "blocks.1.hook_resid_post", 3)
    );
    // block 0: 4 + 2 rows at 5 per shard, block 1 likewise, block 2: 4 + 1, block 3: 2
    let listed: Vec<(usize, usize, usize)> = single
        .shards
        .iter()
        .map(|s| (s.block, s.piece, s.rows))
        .collect();
    assert_eq!(
        listed,
        [
            (0, 0, 5),
            (0, 1, 1),
            (1, 0, 5),
            (1, 1, 1),
            (2, 0, 5),
            (3, 0, 2)
        ]
    );
    assert_eq!(merged.shards, single.shards);
    let files = shard_files(&one);
    assert_eq!(files.len(), 6);
    assert!(files.contains_key("shard-00000003-0.safetensors"));
    assert_eq!(files, shard_files(&three));
    let rows = row_multiset(&one);
    assert_eq!(rows.values().sum::<usize>(), 19);

    // the same SAE from either store
    let sae = |store: &Path, name: &str| {
        let out = tmp.path().join(name);
        let run = train_topk_from_store(&model, store, &out, "8", &[]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        std::fs::read(out.join("sae_weights.safetensors")).unwrap()
    };
    let from_one = sae(&one, "sae-one");
    assert!(!from_one.is_empty());
    assert_eq!(from_one, sae(&three, "sae-three"));
}

/// `--jsonl` (with `--field`) and `--token-ids` (lists and objects, made with the model's own
/// tokenizer) give the store the equivalent text gives, byte for byte.
#[test]
fn jsonl_and_token_ids_give_the_store_the_text_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let lines: Vec<&str> = CORPUS.lines().collect();
    let text = tmp.path().join("data.txt");
    std::fs::write(&text, CORPUS).unwrap();
    let jsonl = tmp.path().join("data.jsonl");
    let mut json_lines = String::new();
    for (k, line) in lines.iter().enumerate() {
        if line.is_empty() {
            json_lines.push('\n');
        } else {
            json_lines += &format!("{}\n", serde_json::json!({"id": k, "body": line}));
        }
    }
    std::fs::write(&jsonl, json_lines).unwrap();
    let tokenizer = vene::models::Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
    let ids = tmp.path().join("ids.jsonl");
    let mut id_lines = String::new();
    for (k, line) in lines.iter().filter(|l| !l.is_empty()).enumerate() {
        let t = tokenizer.encode(line).unwrap();
        let value = match k {
            0 => serde_json::json!(t),
            1 => serde_json::json!({"input_ids": t}),
            _ => serde_json::json!({"tokens": t, "text": line}),
        };
        id_lines += &format!("{value}\n");
    }
    assert!(id_lines.starts_with("[1,2,3,4,5,6]\n"), "{id_lines}");
    std::fs::write(&ids, id_lines).unwrap();

    let site = ["--site", "blocks.1.hook_resid_post"];
    let store = |name: &str, input: &[&str]| {
        let out = tmp.path().join(name);
        let said = stdout(&run_collect(
            &model,
            &out,
            "0/1",
            &[&site[..], input].concat(),
        ));
        assert!(said.contains("wrote 19 rows"), "{said}");
        (
            shard_files(&out),
            StoreReader::open(&out).unwrap().manifest().shards.clone(),
        )
    };
    let from_text = store("text", &["--text", text.to_str().unwrap()]);
    assert_eq!(from_text.0.len(), 6);
    let from_jsonl = store(
        "jsonl",
        &["--jsonl", jsonl.to_str().unwrap(), "--field", "body"],
    );
    assert_eq!(from_jsonl, from_text);
    let from_ids = store("ids", &["--token-ids", ids.to_str().unwrap()]);
    assert_eq!(from_ids, from_text);
}

/// Two `--site`s in one run (one forward pass per batch) write the stores two one-site runs
/// write, under `--out/<hook name>/`.
#[test]
fn two_sites_in_one_run_equal_two_one_site_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let text = tmp.path().join("data.txt");
    std::fs::write(&text, CORPUS).unwrap();
    let t = text.to_str().unwrap();
    let both = tmp.path().join("both");
    let said = stdout(&run_collect(
        &model,
        &both,
        "0/1",
        &[
            "--text",
            t,
            "--site",
            "resid_0",
            "--site",
            "blocks.1.hook_mlp_out",
        ],
    ));
    for site in ["blocks.0.hook_resid_post", "blocks.1.hook_mlp_out"] {
        let alone = tmp.path().join(site);
        stdout(&run_collect(
            &model,
            &alone,
            "0/1",
            &["--text", t, "--site", site],
        ));
        let dir = both.join(site);
        assert!(
            said.contains(&format!(
                "wrote 19 rows of {site} (width 16) in 6 shards to {}",
                dir.display()
            )),
            "{said}"
        );
        assert_eq!(shard_files(&dir), shard_files(&alone));
        assert_eq!(
            std::fs::read(dir.join("manifest.json")).unwrap(),
            std::fs::read(alone.join("manifest.json")).unwrap()
        );
    }
    // the two sites hold different activations
    assert_ne!(
        canonical_rows(&both.join("blocks.0.hook_resid_post")),
        canonical_rows(&both.join("blocks.1.hook_mlp_out"))
    );
    // a site given twice (two names of one hook) is refused
    let twice = run_collect(
        &model,
        &tmp.path().join("twice"),
        "0/1",
        &[
            "--text",
            t,
            "--site",
            "resid_1",
            "--site",
            "blocks.1.hook_resid_post",
        ],
    );
    assert_eq!(twice.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&twice.stderr).contains("given twice"));
}

/// Batches of 4 sequences (right-padded to the longest, with a mask) give the rows batches
/// of 1 give, within 1e-5.
#[test]
fn batches_of_four_give_the_rows_of_batches_of_one() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let text = tmp.path().join("data.txt");
    std::fs::write(&text, CORPUS).unwrap();
    let rows = |name: &str, batch: &str| {
        let out = tmp.path().join(name);
        // one block of 8 sequences: batches of 4 hold sequences of 4, 2 and 1 tokens
        stdout(&run_collect(
            &model,
            &out,
            "0/1",
            &[
                "--text",
                text.to_str().unwrap(),
                "--site",
                "blocks.1.hook_resid_post",
                "--sequences-per-block",
                "8",
                "--batch-size",
                batch,
            ],
        ));
        canonical_rows(&out)
    };
    let one = rows("one", "1");
    let four = rows("four", "4");
    assert_eq!((one.len(), four.len()), (19, 19));
    let mut worst = 0f32;
    for (a, b) in one.iter().zip(&four) {
        assert_eq!(a.len(), 16);
        for (x, y) in a.iter().zip(b) {
            worst = worst.max((x - y).abs());
        }
    }
    assert!(worst <= 1e-5, "largest difference {worst}");
    // the rows are real activations, not zeros
    assert!(one.iter().flatten().any(|v| v.abs() > 1e-3));
}

/// Bad input is refused with a message naming the file, line and what is wrong, and no store
/// is written.
#[test]
fn bad_inputs_are_refused_by_file_and_line_and_write_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let write = |name: &str, body: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, body).unwrap();
        p.to_str().unwrap().to_string()
    };
    let jsonl = write(
        "data.jsonl",
        "{\"text\": \"the cat\"}\n{\"text\": \"the dog\"\n",
    );
    let no_field = write(
        "field.jsonl",
        "{\"text\": \"the cat\"}\n\n{\"body\": \"the dog\"}\n",
    );
    let not_string = write("number.jsonl", "{\"text\": 7}\n");
    let ids = write("ids.jsonl", "[1, 2, 3]\n[4, 64, 5]\n");
    let negative = write("neg.jsonl", "{\"input_ids\": [1, -2]}\n");
    let text = write("data.txt", "the cat\n");
    let out = tmp.path().join("store");
    let site = ["--site", "blocks.1.hook_resid_post"];
    let cases: Vec<(Vec<&str>, i32, String)> = vec![
        (
            vec!["--jsonl", jsonl.as_str()],
            1,
            format!("{jsonl}:2: not valid JSON"),
        ),
        (
            vec!["--jsonl", no_field.as_str()],
            1,
            format!("{no_field}:3: no field `text`"),
        ),
        (
            vec!["--jsonl", not_string.as_str()],
            1,
            format!("{not_string}:1: field `text` is not a string but a number"),
        ),
        (
            vec!["--token-ids", ids.as_str()],
            1,
            format!(
                "{ids}:2: token id 64 (token 1 of the line) is out of the model's vocabulary of 64 tokens"
            ),
        ),
        (
            vec!["--token-ids", negative.as_str()],
            1,
            format!("{negative}:1: token 1 of the line, -2, is not a token id"),
        ),
        (
            vec!["--text", text.as_str(), "--jsonl", jsonl.as_str()],
            2,
            "cannot be used with".to_string(),
        ),
        (vec![], 2, "--text".to_string()),
        (
            vec!["--text", text.as_str(), "--field", "body"],
            1,
            "--field names the text's field of --jsonl objects: it needs --jsonl".to_string(),
        ),
    ];
    for (input, code, message) in cases {
        let run = run_collect(&model, &out, "0/1", &[&site[..], &input[..]].concat());
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(code), "{input:?}: {err}");
        assert!(err.contains(&message), "{input:?}: {err}");
        assert!(!out.exists(), "{input:?} wrote {}", out.display());
    }
    let bad_shard = run_collect(
        &model,
        &out,
        "3/3",
        &[&site[..], &["--text", text.as_str()][..]].concat(),
    );
    assert_eq!(bad_shard.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad_shard.stderr);
    assert!(err.contains("`3/3`: expected i/n with 0 <= i < n"), "{err}");
    assert!(!out.exists());
}

#[test]
fn collect_refuses_a_bad_shard_an_unknown_site_and_a_second_write() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let text = tmp.path().join("data.txt");
    std::fs::write(&text, "the cat\n").unwrap();
    let out = tmp.path().join("store");
    let m = model.to_str().unwrap();
    let (t, o) = (text.to_str().unwrap(), out.to_str().unwrap());
    let bad = vene(&[
        "collect", "--model", m, "--site", "resid_1", "--text", t, "--out", o, "--shard", "3/3",
    ]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("0 <= i < n"));
    let bad = vene(&[
        "collect", "--model", m, "--site", "nowhere", "--text", t, "--out", o,
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--site `nowhere`"));
    collect(&model, &text, &out, "0/1");
    let again = vene(&[
        "collect", "--model", m, "--site", "resid_1", "--text", t, "--out", o,
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("manifest.json"));
}

#[test]
fn train_sae_streams_from_a_store_made_by_shard_jobs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let text = tmp.path().join("data.txt");
    std::fs::write(
        &text,
        "the cat sat on a mat\nthe dog ran to the park\nred house and green tree\nbig tree\n",
    )
    .unwrap();
    let store = tmp.path().join("store");
    for i in 0..2 {
        collect(&model, &text, &store, &format!("{i}/2"));
    }
    let out = tmp.path().join("sae");
    let m = model.to_str().unwrap();
    // 7 sequences (4+2, 4+2, 4+1, 2 tokens) in blocks of 2: job 0 owns blocks 0 and 2 (6 rows:
    // shards of 5 and 1; 5 rows: one shard), job 1 blocks 1 and 3 (5 and 1; 2): 6 shards
    let (s, o) = (store.to_str().unwrap(), out.to_str().unwrap());
    let run = train_topk_from_store(&model, &store, &out, "12", &[]);
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        said.contains("trained a topk SAE on a store of 19 activations of width 16 (6 shards, shuffle buffer 6 rows, at most"),
        "{said}"
    );
    assert!(said.contains("32 latents, 12 steps"), "{said}");
    // buffer 6 + one shard of at most 5 rows
    let held: usize = said
        .split("at most ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!((6..=11).contains(&held), "{said}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["hook_name"], "blocks.1.hook_resid_post");
    assert_eq!(
        (cfg["d_in"].as_u64(), cfg["d_sae"].as_u64()),
        (Some(16), Some(32))
    );
    let loaded = vene::autoencoder::load_sae(&out).unwrap();
    assert_eq!(loaded.autoencoder.latent_dim(), 32);

    // the store is checked: a corrupt shard is refused, naming it
    let shard = store.join("shard-00000001-0.safetensors");
    let mut bytes = std::fs::read(&shard).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&shard, bytes).unwrap();
    let again = vene(&[
        "train-sae",
        "--model",
        m,
        "--store",
        s,
        "--out",
        o,
        "--overwrite",
        "--steps",
        "2",
    ]);
    assert_eq!(again.status.code(), Some(1));
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("shard-00000001-0.safetensors") && err.contains("corrupt"),
        "{err}"
    );
    // --store with --data is clap's error
    let both = vene(&[
        "train-sae",
        "--model",
        m,
        "--store",
        s,
        "--data",
        "x",
        "--out",
        o,
    ]);
    assert_eq!(both.status.code(), Some(2));
}

/// `train-sae --store` with `--checkpoint-every`, then `--resume`: 3 steps and a checkpoint,
/// resumed to 6, save the same weights, byte for byte, as 6 steps straight (the store's seeded
/// stream is replayed past the batches the checkpoint consumed).
#[test]
fn train_sae_from_a_store_resumes_bit_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let text = tmp.path().join("data.txt");
    std::fs::write(
        &text,
        "the cat sat on a mat\nthe dog ran to the park\nred house and green tree\nbig tree\n",
    )
    .unwrap();
    let store = tmp.path().join("store");
    collect(&model, &text, &store, "0/1");
    let ckpt = tmp.path().join("ckpt");
    let train = |out: &str, steps: &str, extra: &[&str]| {
        let out = tmp.path().join(out);
        let run = train_topk_from_store(&model, &store, &out, steps, extra);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        std::fs::read(out.join("sae_weights.safetensors")).unwrap()
    };
    let straight = train("straight", "6", &[]);
    let ck = ckpt.to_str().unwrap();
    let first = train(
        "first",
        "3",
        &["--checkpoint-every", "3", "--checkpoint-dir", ck],
    );
    let resumed = train("resumed", "6", &["--resume", ck]);
    assert_eq!(resumed, straight);
    assert_ne!(first, straight);
}
