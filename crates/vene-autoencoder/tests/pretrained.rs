//! Pretrained SAEs by release and id: every release of the built-in registry resolves from a
//! hub cache folder holding tiny files in its format; canonical ids reach their average_l0
//! folder; Llama Scope's normalisation is folded as documented; unknown names are explained.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use vene_autoencoder::{
    load_sae, AutoencoderError, HubOptions, SaeFormat, SaeRegistry, SaeRelease,
};

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn t(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(v, shape, &Device::Cpu).unwrap()
}

/// `n` values 0.1, 0.2, ... in `shape`.
fn ramp(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (1..=n).map(|i| i as f32 / 10.0).collect();
    t(&v, shape)
}

fn save(path: &Path, tensors: Vec<(&str, Tensor)>) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    candle_core::safetensors::save(&map, path).unwrap();
}

fn write_json(path: &Path, v: serde_json::Value) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, v.to_string()).unwrap();
}

/// The snapshot folder of `path_in_repo` in `repo_id`, in a cache laid out as hf-hub's.
fn snapshot(cache: &Path, repo_id: &str, path_in_repo: &str) -> PathBuf {
    let repo = cache.join(format!("models--{}", repo_id.replace('/', "--")));
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), SHA).unwrap();
    let dir = repo.join("snapshots").join(SHA).join(path_in_repo);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a tiny SAE (`d_in`, `d_sae`) in `format` into `dir`; `hook` goes where the format
/// keeps a hook name (Llama Scope's hyperparams), SAELens's cfg names none (as older configs).
/// Returns the widths written (the dictionary_learning fixture has its own).
fn write_sae(
    dir: &Path,
    format: SaeFormat,
    d_in: usize,
    d_sae: usize,
    hook: Option<&str>,
) -> (usize, usize) {
    match format {
        SaeFormat::SaeLens => {
            write_json(
                &dir.join("cfg.json"),
                serde_json::json!({"d_in": d_in, "d_sae": d_sae, "architecture": "standard"}),
            );
            save(
                &dir.join("sae_weights.safetensors"),
                vec![
                    ("W_enc", ramp(&[d_in, d_sae])),
                    ("b_enc", ramp(&[d_sae])),
                    ("W_dec", ramp(&[d_sae, d_in])),
                    ("b_dec", ramp(&[d_in])),
                ],
            );
        }
        SaeFormat::GemmaScope => {
            let ts = [
                ("W_enc", ramp(&[d_in, d_sae])),
                ("W_dec", ramp(&[d_sae, d_in])),
                ("b_enc", ramp(&[d_sae])),
                ("b_dec", ramp(&[d_in])),
                ("threshold", ramp(&[d_sae])),
            ];
            Tensor::write_npz(&ts, dir.join("params.npz")).unwrap();
        }
        SaeFormat::Sparsify => {
            write_json(
                &dir.join("cfg.json"),
                serde_json::json!({"k": 1, "num_latents": d_sae, "d_in": d_in}),
            );
            save(
                &dir.join("sae.safetensors"),
                vec![
                    ("encoder.weight", ramp(&[d_sae, d_in])),
                    ("encoder.bias", ramp(&[d_sae])),
                    ("W_dec", ramp(&[d_sae, d_in])),
                    ("b_dec", ramp(&[d_in])),
                ],
            );
        }
        SaeFormat::LlamaScope => {
            write_json(
                &dir.join("hyperparams.json"),
                serde_json::json!({"d_model": d_in, "d_sae": d_sae, "act_fn": "jumprelu",
                    "jump_relu_threshold": 0.5, "norm_activation": "dataset-wise",
                    "dataset_average_activation_norm": {"in": 2.0, "out": 2.0},
                    "hook_point_in": hook, "hook_point_out": hook}),
            );
            save(
                &dir.join("checkpoints/final.safetensors"),
                vec![
                    ("encoder.weight", ramp(&[d_sae, d_in])),
                    ("encoder.bias", ramp(&[d_sae])),
                    ("decoder.weight", ramp(&[d_in, d_sae])),
                    ("decoder.bias", ramp(&[d_in])),
                ],
            );
        }
        SaeFormat::DictionaryLearning => {
            // The fixture's torch pickle (d_in 6, d_sae 10), its config moved to `layer`.
            let fixture = vene_testutil::fixtures().join("sae/dictionary_learning");
            std::fs::copy(fixture.join("ae.pt"), dir.join("ae.pt")).unwrap();
            let layer = hook.and_then(|h| h.split('.').nth(1)).unwrap_or("0");
            let mut cfg: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(fixture.join("config.json")).unwrap(),
            )
            .unwrap();
            cfg["trainer"]["layer"] = layer.parse::<usize>().unwrap().into();
            cfg["trainer"]["submodule_name"] = format!("resid_post_layer_{layer}").into();
            write_json(&dir.join("config.json"), cfg);
            return (6, 10);
        }
        other => panic!("no writer for {other:?}"),
    }
    (d_in, d_sae)
}

fn offline(cache: &Path) -> HubOptions {
    HubOptions {
        cache_dir: Some(cache.to_path_buf()),
        offline: true,
        ..HubOptions::default()
    }
}

/// Checks that `id` of `r` loads from `cache` with the registry's site.
fn check_loads(reg: &SaeRegistry, r: &SaeRelease, id: &str, cache: &Path) {
    let sae = r.sae(id).unwrap();
    let dir = snapshot(cache, &r.repo_id, &sae.path);
    let (d_in, d_sae) = write_sae(&dir, r.format, 3, 5, sae.hook_name.as_deref());
    let loaded = reg
        .load(&r.name, id, &offline(cache))
        .unwrap_or_else(|e| panic!("{} {id}: {e}", r.name));
    let what = format!("{} {id}", r.name);
    assert_eq!(loaded.format, r.format, "{what}");
    assert_eq!((loaded.d_in, loaded.d_sae), (d_in, d_sae), "{what}");
    assert!(
        loaded.weights_path.starts_with(&dir),
        "{what}: {:?}",
        loaded.weights_path
    );
    assert_eq!(loaded.layer, sae.layer, "{what}");
    if r.format == SaeFormat::DictionaryLearning {
        // dictionary_learning's config names its submodule (`resid_post_layer_N`).
        let l = sae.layer.unwrap();
        assert_eq!(
            loaded.hook_name,
            Some(format!("resid_post_layer_{l}")),
            "{what}"
        );
        assert_eq!(
            sae.hook_name,
            Some(format!("blocks.{l}.hook_resid_post")),
            "{what}"
        );
    } else if r.format == SaeFormat::Sparsify {
        // sparsify's folder is the hookpoint (`layers.N`), the same site as the registry's.
        assert_eq!(
            loaded.hook_name.as_deref(),
            Some(sae.path.as_str()),
            "{what}"
        );
        assert_eq!(
            sae.hook_name.as_deref(),
            Some(format!("blocks.{}.hook_resid_post", sae.layer.unwrap()).as_str())
        );
    } else {
        assert_eq!(loaded.hook_name, sae.hook_name, "{what}");
    }
    // The SAE runs.
    let z = loaded.autoencoder.encode(&ramp(&[1, d_in])).unwrap();
    assert_eq!(z.dims(), [1, d_sae], "{what}");
}

#[test]
fn every_release_resolves_its_ids_from_the_hub_cache_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = SaeRegistry::builtin().unwrap();
    let names: Vec<&str> = reg.releases().iter().map(|r| r.name.as_str()).collect();
    for want in [
        "gpt2-small-res-jb",
        "gemma-scope-2b-pt-res",
        "gemma-scope-2b-pt-res-canonical",
        "gemma-scope-2b-pt-mlp-canonical",
        "gemma-scope-2b-pt-att-canonical",
        "gemma-scope-9b-pt-res-canonical",
        "llama_scope_lxr_8x",
        "pythia-70m-deduped-res-sm",
        "sae-llama-3-8b-32x",
        "sae-pythia-70m-deduped-32k",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for (i, r) in reg.releases().iter().enumerate() {
        // A cache per release: releases sharing a repo (canonical ones) must each find theirs.
        let cache = tmp.path().join(i.to_string());
        let ids: Vec<&str> = r.ids().collect();
        check_loads(reg, r, ids[0], &cache);
        check_loads(reg, r, ids[ids.len() - 1], &cache);
    }
}

#[test]
fn registry_facts_match_saelens() {
    let reg = SaeRegistry::builtin().unwrap();
    let count = |name: &str| reg.release(name).unwrap().saes.len();
    for (name, n) in [
        ("gpt2-small-res-jb", 13),
        ("gpt2-small-res-jb-feature-splitting", 8),
        ("gemma-2b-res-jb", 5),
        ("gemma-scope-2b-pt-res", 316),
        ("gemma-scope-2b-pt-res-canonical", 58),
        ("gemma-scope-2b-pt-mlp-canonical", 52),
        ("gemma-scope-2b-pt-att-canonical", 52),
        ("gemma-scope-9b-pt-res-canonical", 90),
        ("llama_scope_lxm_32x", 32),
        ("pythia-70m-deduped-res-sm", 7),
        ("sae-llama-3-8b-32x", 32),
        ("sae-pythia-70m-deduped-32k", 6),
    ] {
        assert_eq!(count(name), n, "{name}");
    }
    let (r, s) = reg
        .resolve("gemma-scope-2b-pt-att", "layer_3/width_16k/average_l0_219")
        .unwrap();
    assert_eq!(r.repo_id, "google/gemma-scope-2b-pt-att");
    assert_eq!(s.hook_name.as_deref(), Some("blocks.3.attn.hook_z"));
    let (r, s) = reg
        .resolve("pythia-70m-deduped-res-sm", "blocks.0.hook_resid_pre")
        .unwrap();
    assert_eq!(r.repo_id, "ctigges/pythia-70m-deduped__res-sm_processed");
    assert_eq!((s.path.as_str(), s.layer), ("e-res-sm", Some(0)));
    let (r, s) = reg.resolve("llama_scope_lxa_32x", "l31a_32x").unwrap();
    assert_eq!(r.repo_id, "fnlp/Llama3_1-8B-Base-LXA-32x");
    assert_eq!(r.model, "meta-llama/Llama-3.1-8B");
    assert_eq!(s.path, "Llama3_1-8B-Base-L31A-32x");
    assert_eq!(s.hook_name.as_deref(), Some("blocks.31.hook_attn_out"));
    let (r, s) = reg
        .resolve(
            "gpt2-small-res-jb-feature-splitting",
            "blocks.8.hook_resid_pre_1536",
        )
        .unwrap();
    assert_eq!(
        r.repo_id,
        "jbloom/GPT2-Small-Feature-Splitting-Experiment-Layer-8"
    );
    assert_eq!(
        (s.hook_name.as_deref(), s.layer),
        (Some("blocks.8.hook_resid_pre"), Some(8))
    );
    let (_, s) = reg
        .resolve("gemma-2b-res-jb", "blocks.6.hook_resid_post")
        .unwrap();
    assert_eq!(
        s.path,
        "gemma_2b_blocks.6.hook_resid_post_16384_anthropic_fast_lr"
    );
    let (_, s) = reg
        .resolve("gemma-scope-2b-pt-res", "embedding/width_4k/average_l0_6")
        .unwrap();
    assert_eq!(
        (s.hook_name.as_deref(), s.layer),
        (Some("hook_embed"), None)
    );
}

#[test]
fn canonical_ids_load_their_average_l0_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = SaeRegistry::builtin().unwrap();
    for (release, id, folder, hook) in [
        (
            "gemma-scope-2b-pt-res-canonical",
            "layer_5/width_16k/canonical",
            "layer_5/width_16k/average_l0_68",
            "blocks.5.hook_resid_post",
        ),
        (
            "gemma-scope-2b-pt-mlp-canonical",
            "layer_5/width_16k/canonical",
            "layer_5/width_16k/average_l0_114",
            "blocks.5.hook_mlp_out",
        ),
        (
            "gemma-scope-2b-pt-att-canonical",
            "layer_5/width_16k/canonical",
            "layer_5/width_16k/average_l0_135",
            "blocks.5.attn.hook_z",
        ),
        (
            "gemma-scope-9b-pt-res-canonical",
            "layer_20/width_16k/canonical",
            "layer_20/width_16k/average_l0_68",
            "blocks.20.hook_resid_post",
        ),
        (
            "gemma-scope-2b-pt-res-canonical",
            "layer_12/width_65k/canonical",
            "layer_12/width_65k/average_l0_72",
            "blocks.12.hook_resid_post",
        ),
        (
            "gemma-scope-9b-pt-mlp-canonical",
            "layer_3/width_16k/canonical",
            "layer_3/width_16k/average_l0_126",
            "blocks.3.hook_mlp_out",
        ),
    ] {
        let repo = &reg.release(release).unwrap().repo_id;
        let cache = tmp.path().join(release).join(id.replace('/', "_"));
        // The canonical folder (d_sae 4) beside another of the same layer (d_sae 6).
        write_sae(
            &snapshot(&cache, repo, folder),
            SaeFormat::GemmaScope,
            2,
            4,
            None,
        );
        let decoy = folder.rsplit_once('/').unwrap().0.to_string() + "/average_l0_1";
        write_sae(
            &snapshot(&cache, repo, &decoy),
            SaeFormat::GemmaScope,
            2,
            6,
            None,
        );
        let sae = reg.load(release, id, &offline(&cache)).unwrap();
        assert_eq!(sae.d_sae, 4, "{release} {id}");
        assert!(
            sae.weights_path.ends_with(format!("{folder}/params.npz")),
            "{:?}",
            sae.weights_path
        );
        assert_eq!(sae.hook_name.as_deref(), Some(hook));
        // Non-canonical: the same folder by its own id in the plain release.
        let plain = release.trim_end_matches("-canonical");
        let sae = reg.load(plain, folder, &offline(&cache)).unwrap();
        assert_eq!((sae.d_sae, sae.hook_name.as_deref()), (4, Some(hook)));
    }
}

#[test]
fn unknown_releases_and_ids_name_the_closest_and_the_valid_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = SaeRegistry::builtin().unwrap();
    let opts = offline(tmp.path());
    let e = reg.load("gemma-scope-2b-pt-rs", "x", &opts).unwrap_err();
    match &e {
        AutoencoderError::UnknownRelease {
            name,
            closest,
            count,
        } => {
            assert_eq!(name, "gemma-scope-2b-pt-rs");
            assert_eq!(closest[0], "gemma-scope-2b-pt-res");
            assert_eq!(*count, reg.releases().len());
        }
        other => panic!("{other}"),
    }
    assert!(
        e.to_string()
            .contains("did you mean `gemma-scope-2b-pt-res`"),
        "{e}"
    );
    assert!(e.to_string().contains("vene sae-releases"), "{e}");
    // A small release lists its ids.
    let e = reg
        .load("gpt2-small-res-jb", "blocks.8.hook_resid_post", &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("release `gpt2-small-res-jb` has no SAE id `blocks.8.hook_resid_post`"),
        "{e}"
    );
    assert!(
        e.contains("did you mean `blocks.11.hook_resid_post`, `blocks.8.hook_resid_pre`"),
        "{e}"
    );
    assert!(
        e.contains("its ids: blocks.0.hook_resid_pre, blocks.1.hook_resid_pre"),
        "{e}"
    );
    // A large one: the count, examples, where to list them; a canonical id points to the
    // canonical release.
    let e = reg
        .load(
            "gemma-scope-2b-pt-res",
            "layer_5/width_16k/canonical",
            &opts,
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("it has 316 ids"), "{e}");
    assert!(e.contains("vene sae-releases gemma-scope-2b-pt-res"), "{e}");
    assert!(
        e.contains("release `gemma-scope-2b-pt-res-canonical`"),
        "{e}"
    );
    // A known id missing from the offline cache: the release, id, path and repo are named.
    let e = reg
        .load("gpt2-small-res-jb", "blocks.8.hook_resid_pre", &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SAE `blocks.8.hook_resid_pre` of release `gpt2-small-res-jb`"),
        "{e}"
    );
    assert!(
        e.contains("`blocks.8.hook_resid_pre` of `jbloom/GPT2-Small-SAEs-Reformatted`"),
        "{e}"
    );
    assert!(e.contains("offline"), "{e}");
}

#[test]
fn an_extra_registry_file_adds_and_replaces_releases() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("extra.json");
    let extra = serde_json::json!({"format_version": 1, "releases": [
        {"name": "my-saes", "repo_id": "me/my-saes", "model": "openai-community/gpt2",
         "format": "gemma_scope", "hook": "blocks.{layer}.hook_mlp_out",
         "saes": ["layer_2", {"id": "best", "path": "runs/7/layer_4", "hook": "blocks.4.hook_resid_pre"}]},
        {"name": "gpt2-small-res-jb", "repo_id": "me/gpt2-saes", "model": "openai-community/gpt2",
         "format": "SaeLens", "hook": "{id}", "saes": ["blocks.8.hook_resid_pre"]}
    ]});
    std::fs::write(&file, extra.to_string()).unwrap();
    let reg = SaeRegistry::with_extra_file(Some(&file)).unwrap();
    let builtin = SaeRegistry::builtin().unwrap();
    assert_eq!(reg.releases().len(), builtin.releases().len() + 1);
    assert_eq!(
        reg.release("gpt2-small-res-jb").unwrap().repo_id,
        "me/gpt2-saes"
    );
    let cache = tmp.path().join("cache");
    write_sae(
        &snapshot(&cache, "me/my-saes", "runs/7/layer_4"),
        SaeFormat::GemmaScope,
        2,
        3,
        None,
    );
    let sae = reg.load("my-saes", "best", &offline(&cache)).unwrap();
    assert_eq!(
        (sae.hook_name.as_deref(), sae.layer),
        (Some("blocks.4.hook_resid_pre"), Some(4))
    );
    write_sae(
        &snapshot(&cache, "me/my-saes", "layer_2"),
        SaeFormat::GemmaScope,
        2,
        3,
        None,
    );
    let sae = reg.load("my-saes", "layer_2", &offline(&cache)).unwrap();
    assert_eq!(
        (sae.hook_name.as_deref(), sae.layer),
        (Some("blocks.2.hook_mlp_out"), Some(2))
    );
    // A broken file: named, with what is wrong.
    std::fs::write(
        &file,
        r#"{"format_version": 1, "releases": [{"name": "x"}]}"#,
    )
    .unwrap();
    let e = SaeRegistry::with_extra_file(Some(&file))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&file.display().to_string()) && e.contains("missing field"),
        "{e}"
    );
    let e = SaeRegistry::with_extra_file(Some(&tmp.path().join("nope.json"))).unwrap_err();
    assert!(matches!(e, AutoencoderError::Io { .. }), "{e}");
}

/// A Llama Scope folder: d_model 4 (sqrt 2), 2 latents, `dataset_average_activation_norm`
/// in 1 (s_in = 2) and out 4 (s_out = 0.5), threshold 1. Latent 0 reads x0 and writes
/// (2, 0, 0, 0) (decoder norm 2); latent 1 reads x1 (+ x3 when `enc_row1_x3`) and writes
/// (0, 1, 0, 0); decoder bias (0, 0, 0, 1).
fn llama_scope(dir: &Path, extra: serde_json::Value, enc_row1_x3: f32) {
    let mut cfg = serde_json::json!({"d_model": 4, "d_sae": 2, "act_fn": "jumprelu",
        "jump_relu_threshold": 1.0, "norm_activation": "dataset-wise",
        "dataset_average_activation_norm": {"in": 1.0, "out": 4.0},
        "hook_point_in": "blocks.7.hook_resid_post", "hook_point_out": "blocks.7.hook_resid_post",
        "sparsity_include_decoder_norm": true, "apply_decoder_bias_to_pre_encoder": false});
    for (k, v) in extra.as_object().unwrap() {
        cfg[k] = v.clone();
    }
    write_json(&dir.join("hyperparams.json"), cfg);
    save(
        &dir.join("checkpoints/final.safetensors"),
        vec![
            (
                "encoder.weight",
                t(&[1., 0., 0., 0., 0., 1., 0., enc_row1_x3], &[2, 4]),
            ),
            ("encoder.bias", t(&[0., 0.], &[2])),
            (
                "decoder.weight",
                t(&[2., 0., 0., 1., 0., 0., 0., 0.], &[4, 2]),
            ),
            ("decoder.bias", t(&[0., 0., 0., 1.], &[4])),
        ],
    );
}

fn rows(x: &Tensor) -> Vec<f32> {
    x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5)
}

#[test]
fn llama_scope_folds_norms_and_decoder_norm_thresholds() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("Llama3_1-8B-Base-L7R-8x");
    llama_scope(&dir, serde_json::json!({}), 0.0);
    let sae = load_sae(&dir).unwrap();
    assert_eq!(sae.format, SaeFormat::LlamaScope);
    assert_eq!((sae.d_in, sae.d_sae, sae.layer), (4, 2, Some(7)));
    assert_eq!(sae.hook_name.as_deref(), Some("blocks.7.hook_resid_post"));
    assert_eq!(sae.norm_scaling_factor, Some(2.0));
    // The weights file itself is detected too.
    let by_file = load_sae(dir.join("checkpoints/final.safetensors")).unwrap();
    assert_eq!(by_file.format, SaeFormat::LlamaScope);
    // x = (0.3, 0.4, 0, 0): normalised (0.6, 0.8, 0, 0); pre = (0.6, 0.8); thresholds
    // 1 / |dec_j| = (0.5, 1): latent 0 fires, latent 1 does not. decode: (1.2, 0, 0, 1) / 0.5.
    let x = t(&[0.3, 0.4, 0., 0.], &[1, 4]);
    let z = sae.autoencoder.encode(&x).unwrap();
    assert!(close(&rows(&z), &[0.6, 0.0]), "{:?}", rows(&z));
    let y = sae.autoencoder.decode(&z).unwrap();
    assert!(close(&rows(&y), &[2.4, 0., 0., 2.]), "{:?}", rows(&y));

    // Without the decoder norm in the sparsity: threshold 1 for both, nothing fires.
    llama_scope(
        &dir,
        serde_json::json!({"sparsity_include_decoder_norm": false}),
        0.0,
    );
    let z = load_sae(&dir).unwrap().autoencoder.encode(&x).unwrap();
    assert!(close(&rows(&z), &[0.0, 0.0]), "{:?}", rows(&z));

    // The decoder bias before the encoder: latent 1 reads x1 + x3, and x3 - 1 after the bias.
    // x = (0, 0.7, 0, 0): pre1 = 1.4 (fires) without the bias, 1.4 - 1 = 0.4 (not) with it.
    let x = t(&[0., 0.7, 0., 0.], &[1, 4]);
    for (bias, want) in [(false, [0.0, 1.4]), (true, [0.0, 0.0])] {
        llama_scope(
            &dir,
            serde_json::json!({"apply_decoder_bias_to_pre_encoder": bias}),
            1.0,
        );
        let z = load_sae(&dir).unwrap().autoencoder.encode(&x).unwrap();
        assert!(close(&rows(&z), &want), "{bias}: {:?}", rows(&z));
    }
    // Without normalisation: the weights as stored.
    llama_scope(
        &dir,
        serde_json::json!({"norm_activation": "inference"}),
        0.0,
    );
    let sae = load_sae(&dir).unwrap();
    assert_eq!(sae.norm_scaling_factor, None);
    let z = sae
        .autoencoder
        .encode(&t(&[0.6, 0.8, 0., 0.], &[1, 4]))
        .unwrap();
    assert!(close(&rows(&z), &[0.6, 0.0]), "{:?}", rows(&z));
}

#[test]
fn llama_scope_refuses_what_it_cannot_fold() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("sae");
    for (extra, want) in [
        (
            serde_json::json!({"act_fn": "topk"}),
            "unsupported act_fn `topk`",
        ),
        (
            serde_json::json!({"norm_activation": "token-wise"}),
            "unsupported norm_activation `token-wise`",
        ),
        (
            serde_json::json!({"hook_point_out": "blocks.7.hook_mlp_out"}),
            "a transcoder",
        ),
        (
            serde_json::json!({"dataset_average_activation_norm": {"in": 1.0}}),
            "`dataset_average_activation_norm.out`: missing",
        ),
        (
            serde_json::json!({"dataset_average_activation_norm": {"in": 0.0, "out": 1.0}}),
            "finite positive",
        ),
        (
            serde_json::json!({"jump_relu_threshold": "x"}),
            "jump_relu_threshold",
        ),
        (serde_json::json!({"d_sae": 3}), "encoder.bias"),
    ] {
        llama_scope(&dir, extra.clone(), 0.0);
        let e = load_sae(&dir).unwrap_err().to_string();
        assert!(e.contains(want), "{extra}: {e}");
    }
}
