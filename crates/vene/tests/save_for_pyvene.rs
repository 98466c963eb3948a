//! `save_for_pyvene`: folders in pyvene's layout (config keys and state-dict names of pyvene's
//! classes) that vene's own pyvene loader reads back to the same outputs.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::*;
use serde_json::{json, Value};
use vene::hooks::{Component, Unit};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, RepresentationConfig, SaveOptions,
    UnitLocations, VeneError,
};

/// One representation of each type pyvene can rebuild, at layer 1's block output of the tiny
/// GPT-2 (width 16), with the names pyvene's class gives its state dict (from
/// `cls(embed_dim=16, ...).state_dict().keys()` under pyvene 9e33390; `None`: no file).
fn cases() -> Vec<(RepresentationConfig, Option<Vec<&'static str>>)> {
    let r = || RepresentationConfig::new(1, Component::BlockOutput);
    let rotation = [
        "embed_dim",
        "interchange_dim",
        "rotate_layer.parametrizations.weight.original",
        "rotate_layer.parametrizations.weight.0.base",
    ];
    let jumprelu = {
        let t = |s: &[usize], k: f32| {
            let n: usize = s.iter().product();
            let v: Vec<f32> = (0..n).map(|i| ((i as f32 * k).sin()) * 0.5).collect();
            Tensor::from_vec(v, s, &Device::Cpu).unwrap()
        };
        let mut iv = vene::interventions::JumpReLUAutoencoderIntervention::from_tensors(
            t(&[16, 24], 0.37),
            t(&[24], 0.13),
            t(&[24, 16], 0.71),
            t(&[16], 0.29),
            t(&[24], 0.05).abs().unwrap(),
        )
        .unwrap();
        iv.set_interchange_dim(vene::interventions::InterchangeDim::First(6))
            .unwrap();
        iv
    };
    vec![
        (
            r().intervention_type("VanillaIntervention")
                .hyperparam("interchange_dim", json!(8)),
            None,
        ),
        (
            r().intervention_type("AdditionIntervention")
                .source_representation(Tensor::arange(0f32, 16., &Device::Cpu).unwrap()),
            Some(vec!["source_representation"]),
        ),
        (r().intervention_type("SubtractionIntervention"), None),
        (
            r().intervention_type("ZeroIntervention")
                .hyperparam("interchange_dim", json!(5)),
            None,
        ),
        (
            r().intervention_type("CollectIntervention"),
            Some(vec!["source_representation"]),
        ),
        (
            r().intervention_type("NoiseIntervention"),
            Some(vec!["source_representation"]),
        ),
        (
            r().intervention_type("RotatedSpaceIntervention")
                .hyperparam("seed", json!(3))
                .hyperparam("interchange_dim", json!(4)),
            Some(rotation.to_vec()),
        ),
        (
            r().intervention_type("LowRankRotatedSpaceIntervention")
                .low_rank_dimension(3)
                .hyperparam("seed", json!(5)),
            Some(rotation.to_vec()),
        ),
        (
            r().intervention_type("BoundlessRotatedSpaceIntervention")
                .hyperparam("seed", json!(7))
                .hyperparam("temperature", json!(2.0)),
            Some(
                [
                    &[
                        "embed_dim",
                        "interchange_dim",
                        "intervention_boundaries",
                        "temperature",
                        "intervention_population",
                    ][..],
                    &rotation[2..],
                ]
                .concat(),
            ),
        ),
        (
            r().intervention_type("SigmoidMaskRotatedSpaceIntervention")
                .hyperparam("seed", json!(9)),
            Some(
                [
                    &["embed_dim", "interchange_dim", "masks", "temperature"][..],
                    &rotation[2..],
                ]
                .concat(),
            ),
        ),
        (
            r().intervention_type("SigmoidMaskIntervention"),
            Some(vec!["embed_dim", "interchange_dim", "mask", "temperature"]),
        ),
        (
            r().intervention_type("AutoencoderIntervention")
                .latent_dim(32)
                .hyperparam("interchange_dim", json!([1, 2, 3])),
            Some(vec![
                "embed_dim",
                "interchange_dim",
                "autoencoder.encoder.0.weight",
                "autoencoder.encoder.0.bias",
                "autoencoder.decoder.0.weight",
                "autoencoder.decoder.0.bias",
            ]),
        ),
        (
            r().intervention(Arc::new(jumprelu)),
            Some(vec![
                "embed_dim",
                "interchange_dim",
                "W_enc",
                "W_dec",
                "threshold",
                "b_enc",
                "b_dec",
            ]),
        ),
    ]
}

fn one(repr: RepresentationConfig) -> IntervenableModel<vene::models::Model> {
    IntervenableModel::new(IntervenableConfig::new(vec![repr]), model("gpt2")).unwrap()
}

fn request() -> ForwardRequest {
    let o = oracle("gpt2");
    ForwardRequest::new(get(&o, "gpt2.base_input_ids"))
        .source(get(&o, "gpt2.source_input_ids"))
        .locations(UnitLocations::pair(5, 3))
}

fn bits(t: &Tensor) -> Vec<u64> {
    let t = t.flatten_all().unwrap();
    match t.dtype() {
        DType::I64 => t
            .to_vec1::<i64>()
            .unwrap()
            .iter()
            .map(|&x| x as u64)
            .collect(),
        _ => t
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect(),
    }
}

#[test]
fn every_type_pyvene_has_round_trips_with_pyvenes_names() {
    let req = request();
    for (repr, names) in cases() {
        let im = one(repr);
        let key = im.keys()[0].to_string();
        let type_name = im.intervention(&key).unwrap().type_name();
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("saved");
        im.save_for_pyvene(&target, &SaveOptions::default())
            .unwrap_or_else(|e| panic!("{type_name}: {e}"));
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(target.join("config.json")).unwrap())
                .unwrap();
        assert_eq!(
            config["intervention_types"][0],
            json!(format!("<class 'pyvene.models.interventions.{type_name}'>"))
        );
        assert_eq!(config["sorted_keys"], json!([key]));
        let bin = target.join(vene::pyvene_state_file_name(&key));
        match &names {
            None => assert!(!bin.exists(), "{type_name}: pyvene reads no file"),
            Some(names) => {
                let state = vene::autoencoder::read_torch_pickle(&bin, &Device::Cpu).unwrap();
                let mut got: Vec<&str> = state.keys().map(String::as_str).collect();
                let mut want = names.clone();
                got.sort();
                want.sort();
                assert_eq!(got, want, "{type_name}");
                for (n, t) in &state {
                    if ["embed_dim", "intervention_population"].contains(&n.as_str()) {
                        assert_eq!(t.dtype(), DType::I64, "{type_name}: {n}");
                    }
                }
                if let Some(e) = state.get("embed_dim") {
                    assert_eq!(e.to_scalar::<i64>().unwrap(), 16, "{type_name}");
                }
            }
        }
        // vene's pyvene loader rebuilds it with the same outputs
        let back = IntervenableModel::load(&target, model("gpt2"))
            .unwrap_or_else(|e| panic!("{type_name}: {e}"));
        assert_eq!(back.keys(), im.keys());
        let x = im.forward(&req).unwrap();
        let y = back.forward(&req).unwrap();
        let diff = max_abs_diff(&x.intervened, &y.intervened);
        // rotations: vene re-orthonormalizes the matrix it saved (a no-op up to rounding)
        assert!(diff <= 2e-5, "{type_name}: outputs differ by {diff}");
        assert_eq!(x.collected.len(), y.collected.len());
        for (a, b) in x.collected.iter().zip(&y.collected) {
            assert_eq!(max_abs_diff(a, b), 0.0, "{type_name}: collected");
        }
    }
}

#[test]
fn saved_state_reads_back_bit_exactly() {
    // the AE's weights and the JumpReLU's, as vene holds them, in the .bin files
    for (repr, _) in cases()
        .into_iter()
        .filter(|(r, _)| r.intervention.is_some() || r.type_name() == "AutoencoderIntervention")
    {
        let im = one(repr);
        let key = im.keys()[0].to_string();
        let iv = im.intervention(&key).unwrap().clone();
        let dir = tempfile::tempdir().unwrap();
        im.save_for_pyvene(dir.path(), &SaveOptions::default())
            .unwrap();
        let state = vene::autoencoder::read_torch_pickle(
            &dir.path().join(vene::pyvene_state_file_name(&key)),
            &Device::Cpu,
        )
        .unwrap();
        let ours: HashMap<String, Tensor> = iv.state_dict().unwrap().into_iter().collect();
        let mut compared = 0;
        for (n, t) in &state {
            let mine = &ours[n];
            assert_eq!(t.dims(), mine.dims(), "{n}");
            assert_eq!(t.dtype(), mine.dtype(), "{n}");
            assert_eq!(bits(t), bits(mine), "{n}");
            compared += 1;
        }
        assert!(compared >= 6);
    }
}

#[test]
fn rotations_are_saved_as_torchs_parametrization_of_the_same_matrix() {
    let repr = RepresentationConfig::new(1, Component::BlockOutput)
        .intervention_type("LowRankRotatedSpaceIntervention")
        .low_rank_dimension(3)
        .hyperparam("seed", json!(5));
    let im = one(repr);
    let key = im.keys()[0].to_string();
    let w = im.intervention(&key).unwrap().state_dict().unwrap()[0]
        .1
        .clone();
    assert_eq!(w.dims(), &[16, 3]);
    let dir = tempfile::tempdir().unwrap();
    im.save_for_pyvene(dir.path(), &SaveOptions::default())
        .unwrap();
    let s = vene::autoencoder::read_torch_pickle(
        &dir.path().join(vene::pyvene_state_file_name(&key)),
        &Device::Cpu,
    )
    .unwrap();
    let original = &s["rotate_layer.parametrizations.weight.original"];
    let base = &s["rotate_layer.parametrizations.weight.0.base"];
    // original = -I [16, 3] (what torch's right_inverse leaves); base orthogonal [16, 16]
    let neg_id: Vec<Vec<f32>> = (0..16)
        .map(|i| (0..3).map(|j| if i == j { -1.0 } else { 0.0 }).collect())
        .collect();
    assert_eq!(original.to_vec2::<f32>().unwrap(), neg_id);
    let gram = base.t().unwrap().matmul(base).unwrap();
    let eye = Tensor::eye(16, DType::F32, &Device::Cpu).unwrap();
    assert!(max_abs_diff(&gram, &eye) < 1e-5);
    // base's first 3 columns: the orthonormalized rotation vene uses
    let r = vene::interventions::OrthogonalParam::from_tensor(&w)
        .unwrap()
        .matrix()
        .unwrap();
    assert_eq!(
        base.narrow(1, 0, 3).unwrap().to_vec2::<f32>().unwrap(),
        r.to_vec2::<f32>().unwrap()
    );
    // the representation carries pyvene's low_rank_dimension (its constructor needs it)
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["representations"][0][4], json!(3));
}

/// The JSON type of each value, recursively for arrays.
fn shape_of(v: &Value) -> Value {
    match v {
        Value::Null => json!("null"),
        Value::Bool(_) => json!("bool"),
        Value::Number(_) => json!("number"),
        Value::String(_) => json!("string"),
        Value::Array(a) => Value::Array(a.iter().map(shape_of).collect()),
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, v)| (k.clone(), shape_of(v))).collect())
        }
    }
}

#[test]
fn config_has_the_structure_of_pyvenes_own() {
    // the fixture pyvene saved: one AutoencoderIntervention at layer 1 block_output,
    // latent_dim 32, dims [1, 2, 3]
    let theirs: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/saved_ae_intervenable/config.json")).unwrap(),
    )
    .unwrap();
    let im = IntervenableModel::load(format!("{FIXTURES}/saved_ae_intervenable"), model("gpt2"))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    im.save_for_pyvene(dir.path(), &SaveOptions::default())
        .unwrap();
    let ours: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(shape_of(&ours), shape_of(&theirs));
    // and the same values: pyvene's save of this model is this config
    assert_eq!(ours, theirs);
    // the state file pyvene wrote and the one vene wrote hold the same tensors
    let name = "intkey_layer_1_comp_block_output_unit_pos_nunit_1#0.bin";
    let a = vene::autoencoder::read_torch_pickle(
        &std::path::Path::new(&format!("{FIXTURES}/saved_ae_intervenable")).join(name),
        &Device::Cpu,
    )
    .unwrap();
    let b = vene::autoencoder::read_torch_pickle(&dir.path().join(name), &Device::Cpu).unwrap();
    let mut ka: Vec<_> = a.keys().collect();
    let mut kb: Vec<_> = b.keys().collect();
    ka.sort();
    kb.sort();
    assert_eq!(ka, kb);
    for (k, t) in &a {
        assert_eq!(t.dtype(), b[k].dtype(), "{k}");
        assert_eq!(bits(t), bits(&b[k]), "{k}");
    }

    // several representations: keys with collision counters, head units, a vanilla
    let reprs = vec![
        RepresentationConfig::new(0, Component::BlockOutput),
        RepresentationConfig::new(0, Component::BlockOutput),
        RepresentationConfig::new(1, Component::HeadAttentionValueOutput).unit(Unit::HPos),
    ];
    let im = IntervenableModel::new(IntervenableConfig::new(reprs), model("gpt2")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    im.save_for_pyvene(dir.path(), &SaveOptions::default())
        .unwrap();
    let ours: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("config.json")).unwrap())
            .unwrap();
    let theirs: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/saved_vanilla_intervenable/config.json"))
            .unwrap(),
    )
    .unwrap();
    for k in ["representations", "sorted_keys", "intervention_types"] {
        assert_eq!(
            ours[k].as_array().unwrap()[..],
            theirs[k].as_array().unwrap()[..3],
            "{k}"
        );
    }
    assert_eq!(ours["intervention_dimensions"], json!([16, 16, 8]));
    assert_eq!(
        ours.as_object().unwrap().keys().collect::<Vec<_>>(),
        theirs.as_object().unwrap().keys().collect::<Vec<_>>()
    );
    // no state files: pyvene reads none for vanilla interventions
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn what_pyvene_cannot_rebuild_is_an_error_and_writes_nothing() {
    let r = || RepresentationConfig::new(1, Component::BlockOutput);
    let cases = vec![
        (
            r().intervention_type("AutoencoderIntervention")
                .latent_dim(8)
                .hyperparam("mode", json!("error_preserving")),
            "mode",
        ),
        (
            r().intervention_type("NoiseIntervention")
                .hyperparam("seed", json!(2)),
            "RandomState(1)",
        ),
        (
            r().intervention_type("VanillaIntervention")
                .hyperparam("interchange_dim", json!([2, 5])),
            "first k dims",
        ),
        (
            r().intervention_type("RotatedSpaceIntervention")
                .source_representation(Tensor::zeros(16, DType::F32, &Device::Cpu).unwrap()),
            "constant source",
        ),
    ];
    for (repr, words) in cases {
        let im = one(repr);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("saved");
        match im.save_for_pyvene(&target, &SaveOptions::default()) {
            Err(e @ VeneError::NotForPyvene { .. }) => {
                let msg = e.to_string();
                assert!(msg.contains(words), "{msg}");
                assert!(msg.contains("layer_1_comp_block_output"), "{msg}");
            }
            other => panic!("expected NotForPyvene, got {other:?}"),
        }
        assert!(!target.exists());
    }
}

#[test]
fn a_folder_with_files_is_replaced_only_with_overwrite() {
    let im = one(RepresentationConfig::new(1, Component::BlockOutput));
    let dir = tempfile::tempdir().unwrap();
    im.save_for_pyvene(dir.path(), &SaveOptions::default())
        .unwrap();
    let before = std::fs::read(dir.path().join("config.json")).unwrap();
    assert!(matches!(
        im.save_for_pyvene(dir.path(), &SaveOptions::default()),
        Err(VeneError::SaveTarget { .. })
    ));
    assert_eq!(
        std::fs::read(dir.path().join("config.json")).unwrap(),
        before
    );
    im.save_for_pyvene(dir.path(), &SaveOptions::default().overwrite(true))
        .unwrap();
}

#[test]
fn a_checkpoint_written_by_the_torch_writer_loads_as_a_model() {
    // the tiny GPT-2's weights as a pytorch_model.bin: vene-models' own reader gives the
    // same model, bit for bit
    let src = format!("{FIXTURES}/tiny-gpt2");
    let weights =
        candle_core::safetensors::load(format!("{src}/model.safetensors"), &Device::Cpu).unwrap();
    let mut tensors: Vec<(String, Tensor)> = weights.into_iter().collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(format!("{src}/config.json"), dir.path().join("config.json")).unwrap();
    vene::autoencoder::write_torch_pickle(&dir.path().join("pytorch_model.bin"), &tensors).unwrap();
    let from_bin =
        vene::models::Model::from_dir(dir.path(), DType::F32, &vene_testutil::device()).unwrap();
    let cfg =
        || IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)]);
    let a = IntervenableModel::new(cfg(), from_bin).unwrap();
    let b = IntervenableModel::new(cfg(), model("gpt2")).unwrap();
    let req = request().output_original(true);
    let (x, y) = (a.forward(&req).unwrap(), b.forward(&req).unwrap());
    assert_eq!(max_abs_diff(&x.intervened, &y.intervened), 0.0);
    assert_eq!(
        max_abs_diff(x.original.as_ref().unwrap(), y.original.as_ref().unwrap()),
        0.0
    );
}

#[test]
fn trained_pyvene_rotations_load_through_torchs_orthogonal_map() {
    // pyvene saved these after 5 training steps (scripts/make_pyvene_das_fixture.py): the
    // parametrization's `original` is away from -I, so the weights come from matrix_exp
    // (square) and Householder (rank 3) of it, times `base`
    let dir = format!("{FIXTURES}/saved_das_intervenable");
    let expected = candle_core::safetensors::load(
        format!("{FIXTURES}/saved_das_expected.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let im = IntervenableModel::load(&dir, model("gpt2")).unwrap();
    assert_eq!(im.keys().len(), 2);
    for key in im.keys() {
        let iv = im.intervention(key).unwrap();
        let state: HashMap<String, Tensor> = iv.state_dict().unwrap().into_iter().collect();
        let w = &state["rotate_layer.weight"];
        let want = &expected[&format!("rotation.{key}")];
        assert_eq!(w.dims(), want.dims(), "{key}");
        let diff = max_abs_diff(w, want);
        assert!(
            diff < 1e-5,
            "{key}: rotation differs from pyvene's by {diff}"
        );
    }
    let o = oracle("gpt2");
    let req = ForwardRequest::new(get(&o, "gpt2.base_input_ids"))
        .source(get(&o, "gpt2.source_input_ids"))
        .locations(UnitLocations::pair(5, 3));
    let out = im.forward(&req).unwrap();
    let diff = max_abs_diff(&out.intervened, &expected["intervened_logits"]);
    assert!(diff < 1e-4, "logits differ from pyvene's by {diff}");
    // and saved for pyvene again, the same rotations come back
    let again = tempfile::tempdir().unwrap();
    im.save_for_pyvene(again.path(), &SaveOptions::default())
        .unwrap();
    let back = IntervenableModel::load(again.path(), model("gpt2")).unwrap();
    let y = back.forward(&req).unwrap();
    assert!(max_abs_diff(&out.intervened, &y.intervened) < 2e-5);
}
