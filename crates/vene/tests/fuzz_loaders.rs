//! Fuzzing the loaders the facade reaches: vene and pyvene save folders, `IntervenableConfig`
//! JSON, and model folders (through `Model::from_dir`). Mutated inputs must give errors,
//! never panics or aborts. Fixed seeds, a few seconds per target; the inputs that ever failed
//! are replayed from `tests/fixtures/fuzz-regressions/`.

mod common;

use std::path::Path;
use std::time::Duration;

use candle_core::{DType, Device};
use common::*;
use vene::models::Model;
use vene::{IntervenableConfig, IntervenableModel, RepresentationConfig};
use vene_testutil::fuzz::{replay_regressions, FuzzTarget};

fn run(name: &str, target: FuzzTarget, load: impl Fn(&Path) + Copy) {
    let report = target
        .budget(Duration::from_secs(3))
        .iterations(300)
        .run(load);
    assert!(report.runs > 10, "{name}: only {} runs", report.runs);
    replay_regressions(name, load);
}

fn load_save(dir: &Path) {
    if let Ok(im) = IntervenableModel::load(dir, model("gpt2")) {
        // whatever loads must also run
        let o = oracle("gpt2");
        let req = vene::ForwardRequest::new(get(&o, "gpt2.base_input_ids"))
            .source(get(&o, "gpt2.source_input_ids"))
            .locations(vene::UnitLocations::pair(5, 3));
        let _ = im.forward(&req);
    }
}

#[test]
fn fuzz_vene_save_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("save");
    let cfg = IntervenableConfig::new(vec![
        RepresentationConfig::new(1, vene::hooks::Component::BlockOutput)
            .intervention_type("LowRankRotatedSpaceIntervention")
            .low_rank_dimension(4)
            .subspace_partition(vec![vec![0, 2], vec![2, 4]]),
        RepresentationConfig::new(0, vene::hooks::Component::MlpOutput)
            .intervention_type("NoiseIntervention"),
    ]);
    IntervenableModel::new(cfg, model("gpt2"))
        .unwrap()
        .save(&dir)
        .unwrap();
    run(
        "vene_save",
        FuzzTarget::from_dir("vene_save", &dir).seed(11),
        load_save,
    );
    // an autoencoder save
    let ae_dir = tmp.path().join("ae");
    gpt2_ae_idx_model().save(&ae_dir).unwrap();
    run(
        "vene_save_ae",
        FuzzTarget::from_dir("vene_save_ae", &ae_dir).seed(12),
        load_save,
    );
}

#[test]
fn fuzz_pyvene_save_folder() {
    let dir = Path::new(FIXTURES).join("saved_ae_intervenable");
    run(
        "pyvene_save",
        FuzzTarget::from_dir("pyvene_save", &dir).seed(13),
        load_save,
    );
    let dir = Path::new(FIXTURES).join("saved_vanilla_intervenable");
    run(
        "pyvene_save_vanilla",
        FuzzTarget::from_dir("pyvene_save_vanilla", &dir).seed(14),
        load_save,
    );
}

#[test]
fn fuzz_intervenable_config_json() {
    let json = r#"[
  {"layer": 1, "component": "block_output", "unit": "pos", "max_number_of_units": 1,
   "intervention_type": "AutoencoderIntervention", "latent_dim": 32,
   "subspace_partition": [[0, 8], [8, 32]], "hyperparams": {"interchange_dim": [1, 2]}},
  {"layer": 0, "component": "head_attention_value_output", "unit": "h.pos",
   "intervention_type": "NoiseIntervention", "hyperparams": {"units": 2, "seed": 3}},
  {"layer": 1, "intervention_type": "BoundlessRotatedSpaceIntervention",
   "hyperparams": {"temperature": 50.0}, "group_key": 0}
]"#;
    let files = vec![("config.json".to_string(), json.as_bytes().to_vec())];
    let load = |dir: &Path| {
        let text = std::fs::read_to_string(dir.join("config.json")).unwrap_or_default();
        if let Ok(cfg) = IntervenableConfig::from_json_str(&text) {
            let _ = IntervenableModel::new(cfg, model("gpt2"));
        }
    };
    run(
        "intervenable_config",
        FuzzTarget::new("intervenable_config", files).seed(15),
        load,
    );
}

fn load_model(dir: &Path) {
    if let Ok(m) = Model::from_dir(dir, DType::F32, &Device::Cpu) {
        let ids = candle_core::Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
        let _ = vene::models::LanguageModel::forward(&m, &ids, None, &mut vene::hooks::NoHooks);
    }
}

#[test]
fn fuzz_model_folders() {
    let families = vene_testutil::FAMILY_FIXTURES;
    for (root, name, seed) in [
        (FIXTURES, "gpt2", 16),
        (FIXTURES, "llama", 17),
        (families, "gemma2", 18),
        (families, "gpt_neox", 19),
        (families, "qwen3", 20),
        (families, "olmo2", 21),
        (families, "gpt_neo", 22),
    ] {
        let dir = Path::new(root).join(format!("tiny-{name}"));
        let target_name = format!("model_{name}");
        run(
            &target_name,
            FuzzTarget::from_dir(&target_name, &dir).seed(seed),
            load_model,
        );
    }
}
