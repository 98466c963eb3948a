//! The CLI never panics or aborts on huge sizes, and `train-sae` never destroys an earlier SAE.

mod common;

use common::{model_dir_with_words, vene, FEW_WORDS};

/// Exit code 1 with one line naming `needle`, no panic.
fn assert_refused(args: &[&str], needle: &str) {
    let o = vene(args);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

fn train_args<'a>(model: &'a str, data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "train-sae",
        "--model",
        model,
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
    ]
}

/// `args` with `flag` set to `value` (replacing the value it has, else appended).
fn with_flag<'a>(mut args: Vec<&'a str>, flag: &'a str, value: &'a str) -> Vec<&'a str> {
    match args.iter().position(|a| *a == flag) {
        Some(i) => args[i + 1] = value,
        None => args.extend([flag, value]),
    }
    args
}

#[test]
fn huge_sizes_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir_with_words(tmp.path(), FEW_WORDS);
    let m = model.to_str().unwrap();
    let data = tmp.path().join("data.txt");
    std::fs::write(&data, "the cat sat on a mat\n").unwrap();
    let d = data.to_str().unwrap();
    let out = tmp.path().join("sae");
    let o = out.to_str().unwrap();
    let args = with_flag(train_args(m, d, o), "--expansion", "1000000000000");
    assert_refused(&args, "--expansion");
    let args = with_flag(train_args(m, d, o), "--batch-size", "1000000000000");
    assert_refused(&args, "--batch-size");
    let args = with_flag(train_args(m, d, o), "--expansion", "18446744073709551615");
    assert_refused(&args, "--expansion");
    assert!(!out.exists());
    assert_refused(
        &[
            "steer",
            "--model",
            m,
            "--sae",
            "/no/such/sae",
            "--latent",
            "0",
            "--scale",
            "1",
            "--prompt",
            "the cat",
            "--max-new-tokens",
            "1000000000000",
        ],
        "--max-new-tokens",
    );
}

#[test]
fn train_sae_keeps_an_earlier_sae_unless_asked_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let model = model_dir_with_words(tmp.path(), FEW_WORDS);
    let m = model.to_str().unwrap();
    let data = tmp.path().join("data.txt");
    std::fs::write(&data, "the cat sat on a mat\n").unwrap();
    let d = data.to_str().unwrap();
    let out = tmp.path().join("sae");
    let o = out.to_str().unwrap();
    let first = vene(&train_args(m, d, o));
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let weights = std::fs::read(out.join("sae_weights.safetensors")).unwrap();
    std::fs::write(out.join("stale.txt"), "old").unwrap();
    // without --overwrite: refused before training, nothing changed
    assert_refused(&train_args(m, d, o), "--overwrite");
    assert_eq!(
        std::fs::read(out.join("sae_weights.safetensors")).unwrap(),
        weights
    );
    // with it: a new SAE and none of the old files
    let mut args = train_args(m, d, o);
    args.extend(["--overwrite", "--seed", "3"]);
    let second = vene(&args);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(!out.join("stale.txt").exists());
    assert_ne!(
        std::fs::read(out.join("sae_weights.safetensors")).unwrap(),
        weights
    );
    assert!(vene::autoencoder::load_sae(&out).is_ok());
    // nothing left beside it
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["data.txt", "model", "sae"]);
}
