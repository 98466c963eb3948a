//! Helpers the CLI's integration tests share: a model folder (the fixture tiny GPT-2 with a
//! word-level tokenizer) and running the `vene` binary.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The tiny GPT-2 checkpoint of pyvene's fixtures (vocab 64).
pub const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/pyvene/tiny-gpt2"
);

/// The words of [`model_dir`]'s tokenizer, ids 1.. in this order (0 is `<unk>`).
pub const WORDS: &str =
    "the cat sat on a mat and dog ran to park red blue green big small house tree";

/// The words of the smaller tokenizer some tests use.
pub const FEW_WORDS: &str = "the cat sat on a mat";

/// `root/model`: the fixture checkpoint plus a word-level tokenizer.json for [`WORDS`].
pub fn model_dir(root: &Path) -> PathBuf {
    model_dir_with_words(root, WORDS)
}

/// `root/model`: the fixture checkpoint plus a word-level tokenizer.json with ids 1.. for the
/// space-separated `words` and 0 for unknown words (`<unk>`).
pub fn model_dir_with_words(root: &Path, words: &str) -> PathBuf {
    let dir = root.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(Path::new(FIXTURE).join(f), dir.join(f)).unwrap();
    }
    let mut vocab = serde_json::Map::new();
    vocab.insert("<unk>".into(), 0.into());
    for (i, w) in words.split(' ').enumerate() {
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

/// Runs the `vene` binary built with these tests.
pub fn vene(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vene"))
        .args(args)
        .output()
        .unwrap()
}

/// The stdout of a run that must have succeeded.
pub fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "vene failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}
