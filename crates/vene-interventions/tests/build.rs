//! build_intervention: every built-in type rebuilt from its hyperparams and state dict gives
//! the same outputs; pyvene's saved AE state dict loads.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use vene_interventions::{
    build_intervention, parse_type_name, InterventionError, Selection, TYPE_NAMES,
};
use vene_testutil::{max_abs_diff, oracle};

#[test]
fn every_type_round_trips() {
    let dev = Device::Cpu;
    let d = 6;
    let base = Tensor::randn(0f32, 1., (2, 4, d), &dev).unwrap();
    let source = Tensor::randn(0f32, 1., (2, 4, d), &dev).unwrap();
    let hp = serde_json::json!({
        "latent_dim": 12, "low_rank_dimension": 3, "interchange_dim": [0, 2], "seed": 4
    });
    // PCARotatedSpaceIntervention cannot be built fresh (it needs a fitted PCA, as pyvene's
    // needs its `pca` kwarg): tests/pca.rs rebuilds it from its state dict.
    for name in TYPE_NAMES
        .into_iter()
        .filter(|n| *n != "PCARotatedSpaceIntervention")
    {
        let iv = build_intervention(name, d, &hp, &HashMap::new(), &dev, DType::F32)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(iv.type_name(), name);
        let state: HashMap<String, Tensor> = iv.state_dict().unwrap().into_iter().collect();
        let again = build_intervention(name, d, &iv.hyperparams(), &state, &dev, DType::F32)
            .unwrap_or_else(|e| panic!("{name} rebuilt: {e}"));
        let a = iv
            .forward(&base, Some(&source), &Selection::Default)
            .unwrap();
        let b = again
            .forward(&base, Some(&source), &Selection::Default)
            .unwrap();
        assert!(max_abs_diff(&a, &b) < 1e-5, "{name}");
        assert_eq!(iv.vars().len(), again.vars().len(), "{name}");
    }
}

#[test]
fn hyperparams_are_used() {
    let dev = Device::Cpu;
    let base = Tensor::zeros((1, 1, 4), DType::F32, &dev).unwrap();
    let source = Tensor::ones((1, 1, 4), DType::F32, &dev).unwrap();
    let iv = build_intervention(
        "VanillaIntervention",
        4,
        &serde_json::json!({"interchange_dim": 1}),
        &HashMap::new(),
        &dev,
        DType::F32,
    )
    .unwrap();
    let out = iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    assert_eq!(
        out.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        vec![1., 0., 0., 0.]
    );
    let e = build_intervention(
        "AutoencoderIntervention",
        4,
        &serde_json::json!({}),
        &HashMap::new(),
        &dev,
        DType::F32,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            InterventionError::BadHyperparam {
                key: "latent_dim",
                ..
            }
        ),
        "{e}"
    );
    let e = build_intervention(
        "Nope",
        4,
        &serde_json::json!({}),
        &HashMap::new(),
        &dev,
        DType::F32,
    )
    .unwrap_err();
    assert!(matches!(e, InterventionError::UnknownType(_)), "{e}");
}

#[test]
fn pyvene_type_names_parse() {
    assert_eq!(
        parse_type_name("<class 'pyvene.models.interventions.VanillaIntervention'>").unwrap(),
        "VanillaIntervention"
    );
    assert_eq!(
        parse_type_name("pyvene.models.interventions.JumpReLUAutoencoderIntervention").unwrap(),
        "JumpReLUAutoencoderIntervention"
    );
    assert_eq!(
        parse_type_name("<class 'x.PCARotatedSpaceIntervention'>").unwrap(),
        "PCARotatedSpaceIntervention"
    );
    assert!(parse_type_name("<class 'x.InterventionOfNoKind'>").is_err());
}

/// A pyvene-style AE state dict (the fixture's tensors under `autoencoder.`) with pyvene's
/// 0-d `interchange_dim` buffer: the default selection is pyvene's (latent `embed_dim`),
/// reproducing `ae_default_dim`.
#[test]
fn pyvene_ae_state_dict_loads_with_pyvene_semantics() {
    let dev = Device::Cpu;
    let o = oracle("gpt2");
    let prefix = "gpt2.ae_default_dim.";
    let mut state: HashMap<String, Tensor> = o
        .iter()
        .filter_map(|(k, t)| {
            k.strip_prefix(prefix)
                .filter(|k| k.starts_with("autoencoder."))
                .map(|k| (k.to_string(), t.clone()))
        })
        .collect();
    state.insert("interchange_dim".into(), Tensor::new(16i64, &dev).unwrap());
    state.insert("embed_dim".into(), Tensor::new(16i64, &dev).unwrap());
    let iv = build_intervention(
        "AutoencoderIntervention",
        16,
        &serde_json::json!({}),
        &state,
        &dev,
        DType::F32,
    )
    .unwrap();
    let g = |k: &str| o[&format!("{prefix}{k}")].unsqueeze(1).unwrap();
    let out = iv
        .forward(
            &g("ae_in_base"),
            Some(&g("ae_in_source")),
            &Selection::Default,
        )
        .unwrap();
    assert!(max_abs_diff(&out, &g("ae_out")) < 1e-5);
}

/// SAEs loaded from other libraries' formats (ReLU, TopK, JumpReLU) inside an
/// `AutoencoderIntervention` save their kind, settings (`k`, `apply_b_dec_to_input`) and
/// tensors (thresholds included), and rebuild to bit-identical outputs.
#[test]
fn autoencoder_interventions_around_loaded_saes_round_trip() {
    use std::sync::Arc;
    use vene_autoencoder::{Autoencoder, JumpReLUAutoencoder, ReluAutoencoder, TopKAutoencoder};
    use vene_interventions::{AutoencoderIntervention, AutoencoderMode, Intervention};

    let dev = Device::Cpu;
    let (d, l) = (6, 10);
    let w_enc = Tensor::randn(0f32, 1., (d, l), &dev).unwrap();
    let b_enc = Tensor::randn(0f32, 0.1, l, &dev).unwrap();
    let w_dec = Tensor::randn(0f32, 1., (l, d), &dev).unwrap();
    let b_dec = Tensor::randn(0f32, 0.1, d, &dev).unwrap();
    let threshold = Tensor::full(0.3f32, l, &dev).unwrap();
    let (ew, eb, dw, db) = (w_enc.clone(), b_enc.clone(), w_dec.clone(), b_dec.clone());
    let saes: Vec<(&str, Arc<dyn Autoencoder>)> = vec![
        (
            "relu",
            Arc::new(
                ReluAutoencoder::from_tensors(ew.clone(), eb.clone(), dw.clone(), db.clone())
                    .unwrap()
                    .with_apply_b_dec_to_input(false),
            ),
        ),
        (
            "topk",
            Arc::new(
                TopKAutoencoder::from_tensors(ew.clone(), eb.clone(), dw.clone(), db.clone(), 3)
                    .unwrap(),
            ),
        ),
        (
            "jumprelu",
            Arc::new(JumpReLUAutoencoder::from_tensors(ew, eb, dw, db, threshold).unwrap()),
        ),
    ];
    let base = Tensor::randn(0f32, 1., (2, 3, d), &dev).unwrap();
    let source = Tensor::randn(0f32, 1., (2, 3, d), &dev).unwrap();
    for (kind, sae) in saes {
        let mut iv = AutoencoderIntervention::new(sae)
            .unwrap()
            .with_mode(AutoencoderMode::ErrorPreserving);
        iv.set_interchange_dim(vec![1, 4, 9]).unwrap();
        let hp = iv.hyperparams();
        assert_eq!(hp["autoencoder_kind"], kind);
        let state: HashMap<String, Tensor> = iv.state_dict().unwrap().into_iter().collect();
        let again = build_intervention("AutoencoderIntervention", d, &hp, &state, &dev, DType::F32)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(again.hyperparams(), hp, "{kind}");
        let a = iv
            .forward(&base, Some(&source), &Selection::Default)
            .unwrap();
        let b = again
            .forward(&base, Some(&source), &Selection::Default)
            .unwrap();
        assert_eq!(
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            "{kind}"
        );
    }
    // an unknown kind is a typed error, not a silent fallback
    let mut hp = serde_json::json!({"autoencoder_kind": "crosscoder", "latent_dim": l});
    hp["interchange_dim"] = serde_json::json!([0]);
    let state: HashMap<String, Tensor> = [
        ("autoencoder.W_enc".to_string(), w_enc),
        ("autoencoder.b_enc".to_string(), b_enc),
        ("autoencoder.W_dec".to_string(), w_dec),
        ("autoencoder.b_dec".to_string(), b_dec),
    ]
    .into_iter()
    .collect();
    let err = build_intervention("AutoencoderIntervention", d, &hp, &state, &dev, DType::F32)
        .unwrap_err();
    assert!(err.to_string().contains("crosscoder"), "{err}");
}
