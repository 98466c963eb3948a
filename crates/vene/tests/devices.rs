//! `IntervenableModel::to` / `to_mixed`: the model, every intervention, the autoencoders
//! they hold and the constant sources move together; nothing is left behind. The device is
//! `VENE_TEST_DEVICE` (the CPU unless scripts/gpu-check.sh sets it).

mod common;

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use common::*;
use vene::autoencoder::{AutoencoderLayer, ReluAutoencoder};
use vene::hooks::{Component, HookableModel};
use vene::interventions::{AutoencoderIntervention, Intervention};
use vene::models::{LanguageModel, Model};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, RepresentationConfig, UnitLocations,
};
use vene_testutil::device;

const D: usize = 16;

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 0.3, shape, &Device::Cpu).unwrap()
}

/// GPT-2 with a loaded-style SAE, a trainable AutoencoderLayer (linked at two sites), a
/// low-rank rotation and an addition with a constant source.
fn intervenable() -> IntervenableModel<Model> {
    let sae =
        ReluAutoencoder::from_tensors(randn(&[D, 32]), randn(&[32]), randn(&[32, D]), randn(&[D]))
            .unwrap();
    let sae_iv = AutoencoderIntervention::new(Arc::new(sae))
        .unwrap()
        .with_interchange_dim(vec![1, 4, 9])
        .unwrap();
    let layer_iv = AutoencoderIntervention::from_layer(
        AutoencoderLayer::new(D, 24, DType::F32, &Device::Cpu).unwrap(),
    )
    .unwrap()
    .with_interchange_dim(vec![0, 2])
    .unwrap();
    let layer_iv: Arc<dyn Intervention> = Arc::new(layer_iv);
    let config = IntervenableConfig::new(vec![
        RepresentationConfig::new(0, Component::BlockOutput).intervention(Arc::new(sae_iv)),
        RepresentationConfig::new(1, Component::BlockInput).intervention(layer_iv.clone()),
        RepresentationConfig::new(1, Component::MlpOutput)
            .intervention_type("LowRankRotatedSpaceIntervention")
            .low_rank_dimension(2),
        RepresentationConfig::new(0, Component::MlpOutput)
            .intervention_type("AdditionIntervention")
            .source_representation(randn(&[D])),
    ]);
    IntervenableModel::new(config, model("gpt2")).unwrap()
}

/// Every tensor reachable from `iv`, named: the model's (through a forward's inputs they
/// must match), the interventions' state (without the saved metadata `embed_dim` and
/// `interchange_dim`), their trainable vars, the config's given interventions and constant
/// sources.
fn reachable(iv: &IntervenableModel<Model>) -> Vec<(String, Tensor)> {
    let mut out = Vec::new();
    for (key, i) in iv.keys().into_iter().zip(iv.interventions()) {
        for (name, t) in i.state_dict().unwrap() {
            if name != "embed_dim" && name != "interchange_dim" {
                out.push((format!("{key}/{name}"), t));
            }
        }
        for (j, v) in i.vars().iter().enumerate() {
            out.push((format!("{key}/var{j}"), v.as_tensor().clone()));
        }
    }
    for (k, r) in iv.config().representations.iter().enumerate() {
        if let Some(i) = &r.intervention {
            for (name, t) in i.state_dict().unwrap() {
                if name != "embed_dim" && name != "interchange_dim" {
                    out.push((format!("config[{k}]/{name}"), t));
                }
            }
        }
        if let Some(t) = &r.source_representation {
            out.push((format!("config[{k}]/source_representation"), t.clone()));
        }
    }
    assert!(out.len() > 12, "the test reaches every part: {}", out.len());
    out
}

fn logits(iv: &IntervenableModel<Model>) -> Tensor {
    let o = oracle("gpt2");
    let dev = iv.model().device().clone();
    let base = get(&o, "gpt2.base_input_ids").to_device(&dev).unwrap();
    let source = get(&o, "gpt2.source_input_ids").to_device(&dev).unwrap();
    let req = ForwardRequest::new(base)
        .source(source)
        .locations(UnitLocations::pair(2, 3));
    iv.forward(&req).unwrap().intervened
}

#[test]
fn to_moves_everything() {
    let mut iv = intervenable();
    let want = logits(&iv);
    let n_vars = iv.trainable_vars().len();
    let dev = device();
    iv.to(&dev, DType::BF16).unwrap();
    assert_eq!(iv.model().dtype(), DType::BF16);
    assert!(iv.model().device().same_device(&dev));
    for (name, t) in reachable(&iv) {
        assert_eq!(t.dtype(), DType::BF16, "{name}");
        assert!(t.device().same_device(&dev), "{name}");
    }
    // Linked interventions stay one object, and the config points at the moved ones.
    let ivs = iv.interventions();
    assert!(Arc::ptr_eq(
        iv.config().representations[0]
            .intervention
            .as_ref()
            .unwrap(),
        ivs[0]
    ));
    assert!(Arc::ptr_eq(
        iv.config().representations[1]
            .intervention
            .as_ref()
            .unwrap(),
        ivs[1]
    ));
    assert_eq!(iv.trainable_vars().len(), n_vars);
    // It runs, in bf16, close to the f32 result.
    let got = logits(&iv);
    assert_eq!(got.dtype(), DType::BF16);
    let d = max_abs_diff(&got, &want);
    assert!(d < 0.1 * (1.0 + max_abs(&want)), "bf16 vs f32 logits: {d}");
    // And back.
    iv.to(&Device::Cpu, DType::F32).unwrap();
    assert!(reachable(&iv).iter().all(|(_, t)| t.dtype() == DType::F32));
    assert!(max_abs_diff(&logits(&iv), &want) < 0.1 * (1.0 + max_abs(&want)));
}

#[test]
fn to_mixed_keeps_the_autoencoders_in_their_own_dtype() {
    let mut iv = intervenable();
    let want = logits(&iv);
    iv.to_mixed(&device(), DType::BF16, DType::F32).unwrap();
    assert_eq!(iv.model().dtype(), DType::BF16);
    for (name, t) in reachable(&iv) {
        // Autoencoders (in the two AE interventions) in f32, all the rest in bf16.
        let expected =
            if name.contains("autoencoder.") || name.starts_with("layer_1_comp_block_input") {
                DType::F32
            } else {
                DType::BF16
            };
        assert_eq!(t.dtype(), expected, "{name}");
    }
    let got = logits(&iv);
    assert_eq!(got.dtype(), DType::BF16);
    assert!(max_abs_diff(&got, &want) < 0.1 * (1.0 + max_abs(&want)));
    // The reverse: an f32 model with bf16 autoencoders.
    iv.to_mixed(&device(), DType::F32, DType::BF16).unwrap();
    assert_eq!(iv.model().dtype(), DType::F32);
    let got = logits(&iv);
    assert_eq!(got.dtype(), DType::F32);
    let d = max_abs_diff(&got, &want);
    assert!(d > 0.0 && d < 0.1 * (1.0 + max_abs(&want)), "{d}");
}

#[test]
fn a_failed_move_changes_nothing() {
    // An f16 cast that overflows one SAE weight fails; the model stays f32 and usable.
    let big = (randn(&[D, 8]) * 1e6).unwrap();
    let sae = ReluAutoencoder::from_tensors(big, randn(&[8]), randn(&[8, D]), randn(&[D])).unwrap();
    let iv = AutoencoderIntervention::new(Arc::new(sae)).unwrap();
    let config =
        IntervenableConfig::new(vec![
            RepresentationConfig::new(0, Component::BlockOutput).intervention(Arc::new(iv))
        ]);
    let mut im = IntervenableModel::new(config, model("gpt2")).unwrap();
    let before = logits(&im);
    let err = im.to(&Device::Cpu, DType::F16).unwrap_err().to_string();
    assert!(err.contains("W_enc"), "{err}");
    assert_eq!(im.model().dtype(), DType::F32);
    assert_eq!(im.model().n_layers(), 2);
    assert_eq!(max_abs_diff(&logits(&im), &before), 0.0);
}
