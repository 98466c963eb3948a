//! `vene collect`: activations into an on-disk store; 3 shard jobs make the store 1 job makes.

mod common;

use common::{model_dir, vene};
use std::collections::BTreeMap;
use std::path::Path;

use vene::autoencoder::store::{merge_manifests, ReadOptions, StoreReader};

fn collect(model: &Path, text: &Path, out: &Path, shard: &str) -> String {
    let o = vene(&[
        "collect",
        "--model",
        model.to_str().unwrap(),
        "--site",
        "blocks.1.hook_resid_post",
        "--text",
        text.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--shard",
        shard,
        "--context-length",
        "4",
        "--rows-per-shard",
        "5",
    ]);
    assert!(
        o.status.success(),
        "vene collect failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
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

#[test]
fn three_shard_jobs_make_the_store_one_job_makes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir(tmp.path());
    let text = tmp.path().join("data.txt");
    // 19 tokens over 4 lines (a blank line skipped), cut into chunks of at most 4: 4+2, 4+2, 4+1, 2
    std::fs::write(
        &text,
        "the cat sat on a mat\nthe dog ran to the park\n\nred house and green tree\nbig tree\n",
    )
    .unwrap();
    let one = tmp.path().join("one");
    let said = collect(&model, &text, &one, "0/1");
    assert!(
        said.contains("wrote 19 rows of blocks.1.hook_resid_post (width 16) from 4 lines"),
        "{said}"
    );
    let three = tmp.path().join("three");
    for i in 0..3 {
        collect(&model, &text, &three, &format!("{i}/3"));
    }
    let merged = merge_manifests(&three).unwrap();
    let single = StoreReader::open(&one).unwrap().manifest().clone();
    assert_eq!(single.total_rows, 19);
    assert_eq!(merged.total_rows, single.total_rows);
    assert_eq!(
        (merged.d, merged.site.as_str()),
        (16, "blocks.1.hook_resid_post")
    );
    assert_eq!(merged.writers, 3);
    // job 0 owns lines 1 and 4 (6 + 2 rows), job 1 line 2 (6), job 2 line 3 (5)
    let part_rows: Vec<usize> = (0..3)
        .map(|i| {
            merged
                .shards
                .iter()
                .filter(|s| s.file.starts_with(&format!("shard-{i}-of-3-")))
                .map(|s| s.rows)
                .sum()
        })
        .collect();
    assert_eq!(part_rows, [8, 6, 5]);
    let rows = row_multiset(&one);
    assert_eq!(rows.values().sum::<usize>(), 19);
    assert_eq!(rows, row_multiset(&three));
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
    // job 0: lines 1 and 3 (6 + 5 rows: shards of 5, 5, 1), job 1: lines 2 and 4 (6 + 2: 5, 3)
    let (s, o) = (store.to_str().unwrap(), out.to_str().unwrap());
    let run = train_topk_from_store(&model, &store, &out, "12", &[]);
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        said.contains("trained a topk SAE on a store of 19 activations of width 16 (5 shards, shuffle buffer 6 rows, at most"),
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
    let shard = store.join("shard-1-of-2-0.safetensors");
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
        err.contains("shard-1-of-2-0.safetensors") && err.contains("corrupt"),
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
