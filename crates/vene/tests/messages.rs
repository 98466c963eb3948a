//! Clear messages: a path that is neither a folder nor a hub repo id is "no such folder", a
//! hub failure says how to work offline. (One test: it sets process environment variables.)

use candle_core::{DType, Device};
use vene::models::{load_pretrained, ModelError};

fn message(spec: &str) -> String {
    match load_pretrained(spec, DType::F32, &Device::Cpu) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("{spec} loaded"),
    }
}

#[test]
fn local_paths_and_hub_ids_get_clear_messages() {
    let tmp = tempfile::tempdir().unwrap();
    // Only the (empty) cache in tmp, never the network.
    std::env::set_var("HF_HOME", tmp.path());
    std::env::set_var("HF_HUB_OFFLINE", "1");
    for spec in [
        "/no/such/model/folder",
        "./missing-model",
        "models/gpt2/extra",
        "not a repo",
    ] {
        match load_pretrained(spec, DType::F32, &Device::Cpu) {
            Err(ModelError::Io { path, source }) => {
                assert_eq!(path.to_string_lossy(), spec);
                assert!(source.to_string().contains("no such folder"), "{source}");
            }
            other => panic!("{spec}: expected Io, got {other:?}"),
        }
    }
    let file = tmp.path().join("config.json");
    std::fs::write(&file, "{}").unwrap();
    let m = message(file.to_str().unwrap());
    assert!(m.contains("not a folder"), "{m}");
    // shaped like owner/name: the hub, here offline with an empty cache
    let m = message("someone/some-model");
    assert!(m.contains("hub cache"), "{m}");
    assert!(m.contains("HF_HUB_OFFLINE"), "{m}");
    assert!(m.contains("someone/some-model"), "{m}");
    // SAEs from the hub say the same
    let e = vene::autoencoder::load_sae_from_hub(
        "someone/saes",
        "layer_1",
        &vene::autoencoder::HubOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("not in the cache"), "{e}");
}
