//! Loading: local folder, sharded weights, hub cache layout, bad files; tokenizers.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use vene_hooks::NoHooks;
use vene_models::{LanguageModel, Model, ModelError, Tokenizer};
use vene_testutil::{fixture, load_tensors, max_abs_diff, oracle};

fn weights(name: &str) -> HashMap<String, Tensor> {
    load_tensors(fixture(&format!("tiny-{name}/model.safetensors")))
}

fn base_logits_match(model: &Model, name: &str) {
    let o = oracle(name);
    let logits = model
        .forward(&o[&format!("{name}.base_input_ids")], None, &mut NoHooks)
        .unwrap();
    let d = max_abs_diff(&logits, &o[&format!("{name}.base_logits")]);
    assert!(d < 1e-5, "{name}: {d}");
}

fn copy_config(name: &str, dir: &Path) {
    std::fs::copy(
        fixture(&format!("tiny-{name}/config.json")),
        dir.join("config.json"),
    )
    .unwrap();
}

#[test]
fn sharded_weights_load() {
    let dir = tempfile::tempdir().unwrap();
    copy_config("llama", dir.path());
    let w = weights("llama");
    let mut names: Vec<&String> = w.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (shard, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let tensors: HashMap<String, Tensor> =
            part.iter().map(|n| ((*n).clone(), w[*n].clone())).collect();
        candle_core::safetensors::save(&tensors, dir.path().join(shard)).unwrap();
        for n in part {
            map.insert((*n).clone(), serde_json::Value::String(shard.to_string()));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    let model = Model::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap();
    base_logits_match(&model, "llama");
}

#[test]
fn gpt2_weights_without_transformer_prefix_load() {
    let dir = tempfile::tempdir().unwrap();
    copy_config("gpt2", dir.path());
    let w: HashMap<String, Tensor> = weights("gpt2")
        .into_iter()
        .map(|(k, v)| (k.trim_start_matches("transformer.").to_string(), v))
        .collect();
    assert!(w.contains_key("h.0.attn.c_attn.weight"));
    candle_core::safetensors::save(&w, dir.path().join("model.safetensors")).unwrap();
    base_logits_match(
        &Model::from_dir(dir.path(), DType::F32, &Device::Cpu).unwrap(),
        "gpt2",
    );
}

/// A hub cache laid out as hf-hub lays it out resolves with no network.
#[test]
fn hub_cache_resolves_offline() {
    let cache = tempfile::tempdir().unwrap();
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let repo = cache.path().join("models--vene-test--tiny-llama");
    let snap = repo.join("snapshots").join(sha);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), sha).unwrap();
    copy_config("llama", &snap);
    std::fs::copy(
        fixture("tiny-llama/model.safetensors"),
        snap.join("model.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../assets/tokenizers/mistral-7b/tokenizer.json"
        ),
        snap.join("tokenizer.json"),
    )
    .unwrap();
    let model = Model::from_hub_with_cache(
        "vene-test/tiny-llama",
        None,
        cache.path(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    base_logits_match(&model, "llama");
    // A commit hash as revision resolves to its snapshot too.
    let model = Model::from_hub_with_cache(
        "vene-test/tiny-llama",
        Some(sha),
        cache.path(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    base_logits_match(&model, "llama");
}

#[test]
fn load_pretrained_reads_tokenizer_when_present() {
    let dir = tempfile::tempdir().unwrap();
    copy_config("gpt2", dir.path());
    std::fs::copy(
        fixture("tiny-gpt2/model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../assets/tokenizers/gpt2/tokenizer.json"
        ),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let p = vene_models::load_pretrained(dir.path().to_str().unwrap(), DType::F32, &Device::Cpu)
        .unwrap();
    let tok = p.tokenizer.expect("tokenizer.json is read");
    assert_eq!(tok.encode("Hello").unwrap(), vec![15496]);
    assert_eq!(p.dir, dir.path());
    base_logits_match(&p.model, "gpt2");
}

#[test]
fn gpt2_tokenizer_matches_hf() {
    let tok = Tokenizer::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../assets/tokenizers/gpt2/tokenizer.json"
    ))
    .unwrap();
    let text = "Hello world! The quick brown fox.";
    let ids = tok.encode(text).unwrap();
    assert_eq!(ids, vec![15496, 995, 0, 383, 2068, 7586, 21831, 13]);
    assert_eq!(tok.decode(&ids).unwrap(), text);
}

#[test]
fn mistral_tokenizer_matches_hf() {
    let tok = Tokenizer::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../assets/tokenizers/mistral-7b/tokenizer.json"
    ))
    .unwrap();
    let ids = tok.encode("Hello").unwrap();
    assert!(ids.contains(&22557), "{ids:?}");
}

#[test]
fn missing_tokenizer_file_is_an_io_error() {
    let err = Tokenizer::from_file("/nonexistent/tokenizer.json").unwrap_err();
    assert!(matches!(err, ModelError::Io { .. }), "{err}");
}

// ---- PyTorch checkpoints (pytorch_model.bin), made by scripts/make_pytorch_bin_fixture.py ----

fn pytorch_fixture(name: &str) -> std::path::PathBuf {
    vene_testutil::fixtures()
        .join("pytorch-bin")
        .join(format!("tiny-{name}"))
}

/// Logits of the model in `dir` and of the same weights from the safetensors fixture, on the
/// oracle's base input.
fn logits_pair(dir: &Path, name: &str) -> (Tensor, Tensor) {
    let ids = &oracle(name)[&format!("{name}.base_input_ids")];
    let from_bin = Model::from_dir(dir, DType::F32, &Device::Cpu).unwrap();
    let from_st =
        Model::from_dir(fixture(&format!("tiny-{name}")), DType::F32, &Device::Cpu).unwrap();
    (
        from_bin.forward(ids, None, &mut NoHooks).unwrap(),
        from_st.forward(ids, None, &mut NoHooks).unwrap(),
    )
}

#[test]
fn pytorch_bin_loads_like_safetensors() {
    // One weight Fortran-ordered, two biases sharing a storage at an offset.
    let dir = pytorch_fixture("gpt2");
    assert!(!dir.join("model.safetensors").exists());
    let (bin, st) = logits_pair(&dir, "gpt2");
    assert_eq!(max_abs_diff(&bin, &st), 0.0);
    base_logits_match(
        &Model::from_dir(&dir, DType::F32, &Device::Cpu).unwrap(),
        "gpt2",
    );
    // load_pretrained takes the same folder.
    let p = vene_models::load_pretrained(dir.to_str().unwrap(), DType::F32, &Device::Cpu).unwrap();
    base_logits_match(&p.model, "gpt2");
}

#[test]
fn sharded_pytorch_bin_loads_like_safetensors() {
    let dir = pytorch_fixture("llama");
    assert!(dir.join("pytorch_model.bin.index.json").is_file());
    let (bin, st) = logits_pair(&dir, "llama");
    assert_eq!(max_abs_diff(&bin, &st), 0.0);
}

#[test]
fn pytorch_bin_in_the_hub_cache_resolves() {
    let cache = tempfile::tempdir().unwrap();
    let sha = "89abcdef0123456789abcdef0123456789abcdef";
    let repo = cache.path().join("models--vene-test--tiny-gpt2-bin");
    let snap = repo.join("snapshots").join(sha);
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), sha).unwrap();
    for f in ["config.json", "pytorch_model.bin"] {
        std::fs::copy(pytorch_fixture("gpt2").join(f), snap.join(f)).unwrap();
    }
    // With the tokenizer cached too, nothing needs the network.
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../assets/tokenizers/gpt2/tokenizer.json"
        ),
        snap.join("tokenizer.json"),
    )
    .unwrap();
    let model = Model::from_hub_with_cache(
        "vene-test/tiny-gpt2-bin",
        None,
        cache.path(),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap();
    base_logits_match(&model, "gpt2");
}

#[test]
fn corrupt_pytorch_bins_are_clear_errors() {
    let src = pytorch_fixture("gpt2");
    let bytes = std::fs::read(src.join("pytorch_model.bin")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "legacy",
            b"\x80\x02\x8a\x0alegacy torch pickle".to_vec(),
            "not a zip-format PyTorch checkpoint",
        ),
        (
            "truncated",
            bytes[..bytes.len() / 2].to_vec(),
            "pytorch_model.bin",
        ),
        ("empty", Vec::new(), "not a zip-format PyTorch checkpoint"),
    ];
    for (what, data, want) in cases {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
        std::fs::write(dir.path().join("pytorch_model.bin"), &data).unwrap();
        match Model::from_dir(dir.path(), DType::F32, &Device::Cpu) {
            Err(e @ ModelError::CorruptWeights { .. }) => {
                let m = e.to_string();
                assert!(m.contains(want), "{what}: {m}");
                assert!(m.contains("pytorch_model.bin"), "{what}: {m}");
            }
            other => panic!("{what}: expected CorruptWeights, got {other:?}"),
        }
    }
    // A shard the index lists but the folder lacks is named.
    let dir = tempfile::tempdir().unwrap();
    let llama = pytorch_fixture("llama");
    for f in [
        "config.json",
        "pytorch_model.bin.index.json",
        "pytorch_model-00001-of-00002.bin",
    ] {
        std::fs::copy(llama.join(f), dir.path().join(f)).unwrap();
    }
    match Model::from_dir(dir.path(), DType::F32, &Device::Cpu) {
        Err(ModelError::Io { path, .. }) => {
            assert!(
                path.ends_with("pytorch_model-00002-of-00002.bin"),
                "{path:?}"
            )
        }
        other => panic!("expected Io, got {other:?}"),
    }
}

// ---- the BOS token ----

const TOKENIZERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../assets/tokenizers");

#[test]
fn gpt2_bos_is_endoftext_and_is_prepended_once() {
    let tok = Tokenizer::from_file(format!("{TOKENIZERS}/gpt2/tokenizer.json")).unwrap();
    assert_eq!(tok.bos_token_id().unwrap(), 50256);
    let plain = vec![15496, 995, 0];
    assert_eq!(tok.encode_bos("Hello world!", None).unwrap(), plain);
    assert_eq!(tok.encode_bos("Hello world!", Some(false)).unwrap(), plain);
    assert_eq!(
        tok.encode_bos("Hello world!", Some(true)).unwrap(),
        vec![50256, 15496, 995, 0]
    );
    // a text that already starts with the BOS token keeps one
    assert_eq!(
        tok.encode_bos("<|endoftext|>Hello", Some(true)).unwrap(),
        vec![50256, 15496]
    );
}

#[test]
fn mistral_bos_comes_from_tokenizer_config() {
    let tok = Tokenizer::from_file(format!("{TOKENIZERS}/mistral-7b/tokenizer.json")).unwrap();
    assert_eq!(tok.bos_token_id().unwrap(), 1);
    let with = tok.encode_bos("Hello", Some(true)).unwrap();
    assert_eq!(with[0], 1);
    assert_ne!(with[1], 1, "{with:?}");
    let without = tok.encode_bos("Hello", Some(false)).unwrap();
    assert_eq!(without, with[1..].to_vec());
}

#[test]
fn bos_from_config_object_null_or_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        format!("{TOKENIZERS}/gpt2/tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    let cfg = dir.path().join("tokenizer_config.json");
    let load = || Tokenizer::from_file(dir.path().join("tokenizer.json")).unwrap();
    std::fs::write(
        &cfg,
        r#"{"bos_token": {"content": "<|endoftext|>", "special": true}}"#,
    )
    .unwrap();
    assert_eq!(load().bos_token_id().unwrap(), 50256);
    std::fs::write(&cfg, r#"{"bos_token": null}"#).unwrap();
    let e = load().bos_token_id().unwrap_err().to_string();
    assert!(e.contains("no BOS token") && e.contains("null"), "{e}");
    // asking for none still works
    assert_eq!(
        load().encode_bos("Hello", Some(false)).unwrap(),
        vec![15496]
    );
    std::fs::write(&cfg, r#"{"bos_token": "<nope>"}"#).unwrap();
    let e = load()
        .encode_bos("Hello", Some(true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"<nope>\"") && e.contains("not in the vocabulary"),
        "{e}"
    );
    // a word-level vocabulary without any BOS-like token
    let words = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": null, "pre_tokenizer": {"type": "Whitespace"}, "post_processor": null,
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": {"<unk>": 0, "hi": 1}, "unk_token": "<unk>"}
    });
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("tokenizer.json"), words.to_string()).unwrap();
    let tok = Tokenizer::from_file(other.path().join("tokenizer.json")).unwrap();
    let e = tok.encode_bos("hi", Some(true)).unwrap_err().to_string();
    assert!(
        e.contains("no BOS token") && e.contains("<|endoftext|>"),
        "{e}"
    );
}

#[test]
fn a_pytorch_tensor_larger_than_its_storage_is_refused_before_reading() {
    use std::io::{Read, Write};
    let src = pytorch_fixture("gpt2");
    let mut zin =
        zip::ZipArchive::new(std::fs::File::open(src.join("pytorch_model.bin")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let mut zout =
        zip::ZipWriter::new(std::fs::File::create(dir.path().join("pytorch_model.bin")).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut cut = false;
    for i in 0..zin.len() {
        let mut entry = zin.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        // The largest storage loses most of its bytes.
        if name.contains("/data/") && bytes.len() >= 3072 && !cut {
            bytes.truncate(100);
            cut = true;
        }
        zout.start_file(name, stored).unwrap();
        zout.write_all(&bytes).unwrap();
    }
    zout.finish().unwrap();
    assert!(cut);
    match Model::from_dir(dir.path(), DType::F32, &Device::Cpu) {
        Err(e @ ModelError::CorruptWeights { .. }) => {
            let m = e.to_string();
            assert!(
                m.contains("needs more bytes than its storage holds (100)"),
                "{m}"
            );
        }
        other => panic!("expected CorruptWeights, got {other:?}"),
    }
}
