//! One intervention saved and loaded on its own (pyvene's `save_intervention` /
//! `load_intervention`), `disable_intervention_gradients` and `count_parameters` with
//! `include_model`.

mod common;

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::*;
use vene::hooks::Component;
use vene::interventions::{PCARotatedSpaceIntervention, PcaFitOptions};
use vene::models::Model;
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, RepresentationConfig, UnitLocations,
    VeneError,
};

fn bits(t: &Tensor) -> Vec<u64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
        .into_iter()
        .map(f64::to_bits)
        .collect()
}

/// Every state tensor of the intervention with key `key`, as bits.
fn state_bits(im: &IntervenableModel<Model>, key: &str) -> Vec<(String, Vec<u64>)> {
    im.intervention(key)
        .unwrap()
        .state_dict()
        .unwrap()
        .iter()
        .map(|(k, t)| (k.clone(), bits(t)))
        .collect()
}

fn low_rank(layer: usize, seed: u64) -> RepresentationConfig {
    RepresentationConfig::new(layer, Component::BlockOutput)
        .intervention_type("LowRankRotatedSpaceIntervention")
        .low_rank_dimension(4)
        .hyperparam("seed", seed.into())
}

/// Moves every trainable parameter a little (a "trained" model).
fn perturb(im: &IntervenableModel<Model>) {
    for v in im.trainable_vars() {
        let n = v.elem_count();
        let noise: Vec<f32> = (0..n).map(|j| 0.03 * ((j as f32) * 1.37).cos()).collect();
        let noise = Tensor::from_vec(noise, v.dims(), &Device::Cpu).unwrap();
        v.set(&(v.as_tensor() + noise).unwrap()).unwrap();
    }
}

fn logits(im: &IntervenableModel<Model>) -> Vec<u64> {
    let o = oracle("gpt2");
    let req = ForwardRequest::new(get(&o, "gpt2.base_input_ids"))
        .source(get(&o, "gpt2.source_input_ids"))
        .locations(UnitLocations::pair(5, 3));
    bits(&im.forward(&req).unwrap().intervened)
}

#[test]
fn one_intervention_round_trips_bit_exactly() {
    let trained = IntervenableModel::new(
        IntervenableConfig::new(vec![low_rank(0, 1), low_rank(1, 1)]),
        model("gpt2"),
    )
    .unwrap();
    perturb(&trained);
    let key = trained.keys()[1].to_string();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("weights");
    let path = trained.save_intervention(&dir, &key).unwrap();
    assert_eq!(path, dir.join(vene::state_file_name(&key)));

    // a fresh model (other seeds): only `key` changes, to the trained bits
    let mut fresh = IntervenableModel::new(
        IntervenableConfig::new(vec![low_rank(0, 2), low_rank(1, 2)]),
        model("gpt2"),
    )
    .unwrap();
    let other = fresh.keys()[0].to_string();
    let other_before = state_bits(&fresh, &other);
    assert_ne!(state_bits(&fresh, &key), state_bits(&trained, &key));
    fresh.load_intervention(&dir, &key).unwrap();
    assert_eq!(state_bits(&fresh, &key), state_bits(&trained, &key));
    assert_eq!(state_bits(&fresh, &other), other_before);
    // it trains again: the loaded rotation is a parameter of the model
    assert_eq!(fresh.trainable_vars().len(), 2);

    // both keys saved into one folder load into a model that then computes the same logits
    trained.save_intervention(&dir, &other).unwrap();
    fresh.load_intervention(&dir, &other).unwrap();
    assert_eq!(logits(&fresh), logits(&trained));
    // saving again writes the same bytes
    let again = tmp.path().join("again");
    fresh.save_intervention(&again, &key).unwrap();
    assert_eq!(
        std::fs::read(dir.join(vene::state_file_name(&key))).unwrap(),
        std::fs::read(again.join(vene::state_file_name(&key))).unwrap()
    );
}

#[test]
fn a_fitted_pca_and_a_constant_source_round_trip() {
    let acts = Tensor::from_vec(
        (0..12 * 16)
            .map(|i| ((i * 7 % 23) as f32 * 0.41).sin())
            .collect::<Vec<_>>(),
        (12, 16),
        &Device::Cpu,
    )
    .unwrap();
    let pca = |k: usize| {
        Arc::new(
            PCARotatedSpaceIntervention::fit(&acts, PcaFitOptions::default().n_components(k))
                .unwrap(),
        )
    };
    let constant = Tensor::from_vec(
        (0..16).map(|i| i as f32 * 0.1).collect::<Vec<_>>(),
        16,
        &Device::Cpu,
    )
    .unwrap();
    let config = |k: usize, c: Tensor| {
        IntervenableConfig::new(vec![
            RepresentationConfig::new(1, Component::BlockOutput).intervention(pca(k)),
            RepresentationConfig::new(0, Component::MlpOutput)
                .intervention_type("AdditionIntervention")
                .source_representation(c),
        ])
    };
    let saved = IntervenableModel::new(config(5, constant), model("gpt2")).unwrap();
    let keys: Vec<String> = saved.keys().iter().map(|k| k.to_string()).collect();
    let tmp = tempfile::tempdir().unwrap();
    for k in &keys {
        saved.save_intervention(tmp.path(), k).unwrap();
    }
    let mut other = IntervenableModel::new(
        config(3, Tensor::zeros(16, DType::F32, &Device::Cpu).unwrap()),
        model("gpt2"),
    )
    .unwrap();
    for k in &keys {
        other.load_intervention(tmp.path(), k).unwrap();
    }
    assert_eq!(state_bits(&other, &keys[0]), state_bits(&saved, &keys[0]));
    assert_eq!(
        other.intervention(&keys[0]).unwrap().hyperparams()["n_components"],
        5
    );
    // the constant source of the config came back too
    let o = oracle("gpt2");
    let req = ForwardRequest::new(get(&o, "gpt2.base_input_ids"))
        .sources([
            get(&o, "gpt2.source_input_ids").into(),
            get(&o, "gpt2.source_input_ids").into(),
        ])
        .locations(UnitLocations::pair(5, 3));
    let a = saved.forward(&req).unwrap().intervened;
    let b = other.forward(&req).unwrap().intervened;
    assert_eq!(bits(&a), bits(&b));
}

/// Everything `load_intervention` can be given wrong: each is an error naming the problem,
/// and the model's intervention is unchanged.
#[test]
fn bad_files_are_clear_errors_and_change_nothing() {
    let trained =
        IntervenableModel::new(IntervenableConfig::new(vec![low_rank(1, 1)]), model("gpt2"))
            .unwrap();
    perturb(&trained);
    let key = trained.keys()[0].to_string();
    let tmp = tempfile::tempdir().unwrap();
    let file = trained.save_intervention(tmp.path(), &key).unwrap();
    let good = std::fs::read(&file).unwrap();

    let mut target =
        IntervenableModel::new(IntervenableConfig::new(vec![low_rank(1, 2)]), model("gpt2"))
            .unwrap();
    let before = state_bits(&target, &key);
    let before_logits = logits(&target);
    let mut check = |dir: &Path, key: &str, want: &str| {
        let e = target.load_intervention(dir, key).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(want), "want {want:?} in: {msg}");
        let real = target.keys()[0].to_string();
        assert_eq!(state_bits(&target, &real), before, "{want}");
        e
    };

    // missing file
    let empty = tempfile::tempdir().unwrap();
    let e = check(empty.path(), &key, "missing state file");
    assert!(matches!(e, VeneError::MissingStateFile { .. }), "{e:?}");
    // unknown key
    check(tmp.path(), "layer_9_nope#0", "no intervention has key");
    // truncated
    std::fs::write(&file, &good[..good.len() - 7]).unwrap();
    check(tmp.path(), &key, "not a valid safetensors file");
    // not safetensors at all
    std::fs::write(&file, b"hello").unwrap();
    check(tmp.path(), &key, "not a valid safetensors file");
    // a plain safetensors file without vene's entry (e.g. vene::save's state file)
    let plain: std::collections::HashMap<String, Tensor> = trained
        .intervention(&key)
        .unwrap()
        .state_dict()
        .unwrap()
        .into_iter()
        .collect();
    vene::autoencoder::write_safetensors(&plain, &file).unwrap();
    check(tmp.path(), &key, "not written by save_intervention");
    // a NaN in the weights
    let nan_model =
        IntervenableModel::new(IntervenableConfig::new(vec![low_rank(1, 1)]), model("gpt2"))
            .unwrap();
    let v = &nan_model.trainable_vars()[0];
    let mut vals = v
        .as_tensor()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    vals[3] = f32::NAN;
    v.set(&Tensor::from_vec(vals, v.dims(), &Device::Cpu).unwrap())
        .unwrap();
    nan_model.save_intervention(tmp.path(), &key).unwrap();
    check(tmp.path(), &key, "non-finite");
    // saved at another site: layer 0's file renamed to layer 1's key
    let layer0 =
        IntervenableModel::new(IntervenableConfig::new(vec![low_rank(0, 1)]), model("gpt2"))
            .unwrap();
    let k0 = layer0.keys()[0].to_string();
    let f0 = layer0.save_intervention(tmp.path(), &k0).unwrap();
    std::fs::rename(&f0, &file).unwrap();
    check(tmp.path(), &key, "saved for key");
    // another intervention type under the same key
    let vanilla_ae = IntervenableModel::new(
        IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
            .intervention_type("RotatedSpaceIntervention")]),
        model("gpt2"),
    )
    .unwrap();
    assert_eq!(vanilla_ae.keys()[0], key);
    vanilla_ae.save_intervention(tmp.path(), &key).unwrap();
    check(tmp.path(), &key, "holds a RotatedSpaceIntervention");

    // nothing changed, and the good file still loads
    assert_eq!(logits(&target), before_logits);
    std::fs::write(&file, &good).unwrap();
    target.load_intervention(tmp.path(), &key).unwrap();
    assert_eq!(state_bits(&target, &key), state_bits(&trained, &key));
}

#[test]
fn a_failed_save_leaves_the_earlier_file() {
    let im = IntervenableModel::new(IntervenableConfig::new(vec![low_rank(1, 1)]), model("gpt2"))
        .unwrap();
    let key = im.keys()[0].to_string();
    let tmp = tempfile::tempdir().unwrap();
    let file = im.save_intervention(tmp.path(), &key).unwrap();
    let before = std::fs::read(&file).unwrap();
    // an unknown key fails before writing anything
    assert!(im.save_intervention(tmp.path(), "nope#0").is_err());
    // a target that is a file, not a folder
    let not_dir = tmp.path().join("a_file");
    std::fs::write(&not_dir, b"x").unwrap();
    assert!(im.save_intervention(&not_dir, &key).is_err());
    assert_eq!(std::fs::read(&not_dir).unwrap(), b"x");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(names.len(), 2, "no temporary files left");
}

#[test]
fn counts_are_the_hand_computed_numbers() {
    let ae = RepresentationConfig::new(0, Component::BlockOutput)
        .intervention_type("AutoencoderIntervention")
        .latent_dim(32);
    // linked: two sites, one intervention, counted once
    let linked = |layer: usize| {
        RepresentationConfig::new(layer, Component::MlpOutput)
            .intervention_type("LowRankRotatedSpaceIntervention")
            .low_rank_dimension(3)
            .intervention_link_key(7)
    };
    let mut im = IntervenableModel::new(
        IntervenableConfig::new(vec![
            ae,
            linked(0),
            linked(1),
            RepresentationConfig::new(1, Component::BlockOutput), // vanilla: nothing
        ]),
        model("gpt2"),
    )
    .unwrap();
    // autoencoder 16 -> 32: encoder 16 * 32 + 32, decoder 32 * 16 + 16; rotation 16 * 3
    let want = (16 * 32 + 32) + (32 * 16 + 16) + 16 * 3;
    assert_eq!(im.count_parameters(), want);
    assert_eq!(im.count_parameters_with(false), want);
    assert_eq!(im.count_parameters_with(true), want); // the model's weights are frozen
    im.disable_intervention_gradients();
    assert_eq!(im.count_parameters_with(false), 0);
    assert!(im.trainable_vars().is_empty());
    // the parameters are still there, by name
    assert_eq!(im.named_parameters().unwrap().len(), 5);
    im.enable_intervention_gradients();
    assert_eq!(im.count_parameters(), want);
}

#[test]
fn every_key_saves_and_loads_all_or_nothing() {
    let trained = IntervenableModel::new(
        IntervenableConfig::new(vec![low_rank(0, 1), low_rank(1, 1)]),
        model("gpt2"),
    )
    .unwrap();
    perturb(&trained);
    let tmp = tempfile::tempdir().unwrap();
    let files = trained.save_interventions(tmp.path()).unwrap();
    assert_eq!(files.len(), 2);
    let mut fresh = IntervenableModel::new(
        IntervenableConfig::new(vec![low_rank(0, 2), low_rank(1, 2)]),
        model("gpt2"),
    )
    .unwrap();
    let keys: Vec<String> = fresh.keys().iter().map(|k| k.to_string()).collect();
    let before: Vec<_> = keys.iter().map(|k| state_bits(&fresh, k)).collect();
    // the second file damaged: the first key, loaded before it failed, is put back
    let good = std::fs::read(&files[1]).unwrap();
    std::fs::write(&files[1], b"damaged").unwrap();
    assert!(fresh.load_interventions(tmp.path()).is_err());
    let after: Vec<_> = keys.iter().map(|k| state_bits(&fresh, k)).collect();
    assert_eq!(after, before);
    std::fs::write(&files[1], good).unwrap();
    fresh.load_interventions(tmp.path()).unwrap();
    assert_eq!(logits(&fresh), logits(&trained));
}
