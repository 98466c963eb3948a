//! Save / load: vene's own format (bit-exact round trip) and pyvene-saved folders.

mod common;

use common::*;
use vene::hooks::Component;
use vene::{ForwardRequest, IntervenableModel, UnitLoc, UnitLocations, VeneError};

fn state_of(im: &IntervenableModel<vene::models::Model>) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    for iv in im.interventions() {
        for (k, t) in iv.state_dict().unwrap() {
            let v = t
                .to_dtype(candle_core::DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            out.push((k, v));
        }
    }
    out
}

#[test]
fn named_parameters_are_pyvenes() {
    let im = gpt2_ae_idx_model();
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{FIXTURES}/manifest.json")).unwrap(),
    )
    .unwrap();
    let expected: Vec<String> =
        serde_json::from_value(manifest["api"]["named_parameters_ae"].clone()).unwrap();
    let named = im.named_parameters().unwrap();
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, expected);
    let count: usize = named.iter().map(|(_, v)| v.elem_count()).sum();
    assert_eq!(count, im.count_parameters());
}

#[test]
fn vene_round_trip_is_bit_exact() {
    let im = gpt2_ae_idx_model();
    assert_eq!(im.count_parameters(), 1072);
    let dir = tempfile::tempdir().unwrap();
    im.save(dir.path()).unwrap();
    assert!(dir
        .path()
        .join("intkey_layer_1_comp_block_output_unit_pos_nunit_1#0.safetensors")
        .exists());
    let back = IntervenableModel::load(dir.path(), model("gpt2")).unwrap();
    assert_eq!(back.keys(), im.keys());
    assert_eq!(back.count_parameters(), 1072);
    let a = state_of(&im);
    let b = state_of(&back);
    assert_eq!(a.len(), b.len());
    for ((ka, va), (kb, vb)) in a.iter().zip(&b) {
        assert_eq!(ka, kb);
        assert!(
            va.iter().zip(vb).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{ka} differs"
        );
    }
    let o = oracle("gpt2");
    let req = ForwardRequest::new(get(&o, "gpt2.base_input_ids"))
        .source(get(&o, "gpt2.source_input_ids"))
        .locations(UnitLocations::sources_to_base(
            vec![vec![vec![5], vec![6]]],
            vec![vec![vec![4], vec![2]]],
        ));
    let x = im.forward(&req).unwrap().intervened;
    let y = back.forward(&req).unwrap().intervened;
    assert_eq!(max_abs_diff(&x, &y), 0.0);
    assert!(max_abs_diff(&y, &get(&o, "gpt2.ae_idx.intervened_logits")) <= 1e-5);
}

#[test]
fn newer_format_is_a_typed_error() {
    let im = gpt2_ae_idx_model();
    let dir = tempfile::tempdir().unwrap();
    im.save(dir.path()).unwrap();
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["format_version"] = serde_json::json!(vene::FORMAT_VERSION + 1);
    std::fs::write(&path, json.to_string()).unwrap();
    match IntervenableModel::load(dir.path(), model("gpt2")) {
        Err(VeneError::NewerFormat {
            found, supported, ..
        }) => {
            assert_eq!(found, vene::FORMAT_VERSION + 1);
            assert_eq!(supported, vene::FORMAT_VERSION);
        }
        other => panic!("expected NewerFormat, got {other:?}"),
    }
}

#[test]
fn loads_pyvene_saved_autoencoder() {
    let dir = format!("{FIXTURES}/saved_ae_intervenable");
    let im = IntervenableModel::load(&dir, model("gpt2")).unwrap();
    assert_eq!(
        im.keys(),
        vec!["layer_1_comp_block_output_unit_pos_nunit_1#0"]
    );
    assert_eq!(im.count_parameters(), 1072);
    let iv = im
        .intervention("layer_1_comp_block_output_unit_pos_nunit_1#0")
        .unwrap();
    assert_eq!(iv.type_name(), "AutoencoderIntervention");
    assert_eq!(
        iv.hyperparams()["interchange_dim"],
        serde_json::json!({"dims": [1, 2, 3]})
    );
    // weights equal to the .bin's
    let bin = candle_core::pickle::read_all(format!(
        "{dir}/intkey_layer_1_comp_block_output_unit_pos_nunit_1#0.bin"
    ))
    .unwrap();
    let ours = iv.state_dict().unwrap();
    for (k, t) in bin
        .iter()
        .filter(|(_, t)| t.dtype() == candle_core::DType::F32)
    {
        let (_, mine) = ours
            .iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("no {k}"));
        assert_eq!(max_abs_diff(t, mine), 0.0, "{k}");
    }
    // and it runs
    let o = oracle("gpt2");
    let out = im
        .forward(
            &ForwardRequest::new(get(&o, "gpt2.base_input_ids"))
                .source(get(&o, "gpt2.source_input_ids"))
                .locations(UnitLocations::pair(5, 3)),
        )
        .unwrap();
    assert!(max_abs_diff(&out.intervened, &get(&o, "gpt2.base_logits")) > 1e-4);
}

#[test]
fn loads_pyvene_saved_vanilla_with_module_path() {
    let dir = format!("{FIXTURES}/saved_vanilla_intervenable");
    let im = IntervenableModel::load(&dir, model("gpt2")).unwrap();
    assert_eq!(
        im.keys(),
        vec![
            "layer_0_comp_block_output_unit_pos_nunit_1#0",
            "layer_0_comp_block_output_unit_pos_nunit_1#1",
            "layer_1_comp_head_attention_value_output_unit_h_pos_nunit_1#0",
            "comp_transformer_h[0]_mlp_output_unit_pos_nunit_1#0",
        ]
    );
    assert_eq!(im.count_parameters(), 0);
    assert_eq!(
        im.config().representations[3].component,
        Component::MlpOutput
    );
    let o = oracle("gpt2");
    let pos = |p: usize| Some(UnitLoc::positions(vec![vec![p]; 2]));
    let head = |p: usize| Some(UnitLoc::head_positions(vec![vec![1]; 2], vec![vec![p]; 2]));
    let locs = UnitLocations::full(
        Some(vec![pos(5), pos(6), head(5), pos(4)]),
        vec![pos(3), pos(2), head(4), pos(1)],
    );
    let out = im
        .forward(
            &ForwardRequest::new(get(&o, "gpt2.base_input_ids"))
                .source(get(&o, "gpt2.source_input_ids"))
                .locations(locs),
        )
        .unwrap();
    assert!(max_abs_diff(&out.intervened, &get(&o, "gpt2.base_logits")) > 1e-4);
    // the same folder on Llama cannot map GPT-2's module path
    match IntervenableModel::load(&dir, model("llama")) {
        Err(VeneError::UnmappedModulePath(p)) => assert_eq!(p, "transformer.h[0].mlp.output"),
        other => panic!("expected UnmappedModulePath, got {other:?}"),
    }
}

/// An SAE in another library's layout (here a TopK SAE, as sparsify writes them) wrapped by
/// `get_intervenable_with_custom_autoencoder` saves its kind, `k` and weights, and loads back
/// to identical logits.
#[test]
fn custom_sae_intervenable_round_trips() {
    use candle_core::{Device, Tensor};
    use vene::autoencoder::TopKAutoencoder;
    let dev = Device::Cpu;
    let (d, l) = (16, 40);
    let sae = TopKAutoencoder::from_tensors(
        Tensor::randn(0f32, 0.5, (d, l), &dev).unwrap(),
        Tensor::randn(0f32, 0.1, l, &dev).unwrap(),
        Tensor::randn(0f32, 0.5, (l, d), &dev).unwrap(),
        Tensor::randn(0f32, 0.1, d, &dev).unwrap(),
        5,
    )
    .unwrap();
    let im = vene::get_intervenable_with_custom_autoencoder(
        model("gpt2"),
        std::sync::Arc::new(sae),
        vec![2, 9, 33],
        1,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    im.save(dir.path()).unwrap();
    let back = IntervenableModel::load(dir.path(), model("gpt2")).unwrap();
    assert_eq!(state_of(&back), state_of(&im));
    let hp = back.interventions()[0].hyperparams();
    assert_eq!(hp["autoencoder_kind"], "topk");
    assert_eq!(hp["autoencoder_settings"]["k"], 5);
    let o = oracle("gpt2");
    let req = ForwardRequest::new(get(&o, "gpt2.base_input_ids"))
        .source(get(&o, "gpt2.source_input_ids"))
        .locations(UnitLocations::pair(5, 3));
    let x = im.forward(&req).unwrap().intervened;
    let y = back.forward(&req).unwrap().intervened;
    assert_eq!(max_abs_diff(&x, &y), 0.0);
    // and the intervention did something
    assert!(max_abs_diff(&x, &get(&o, "gpt2.base_logits")) > 1e-4);
}

/// A gated SAE with SAELens layer norm and a skip connection (both make the reconstruction
/// depend on the input) saves its kind, settings and every tensor, and loads back to identical
/// logits.
#[test]
fn gated_layer_norm_skip_sae_round_trips() {
    use candle_core::{Device, Tensor};
    use vene::autoencoder::{GatedAutoencoder, InputNormalization};
    let dev = Device::Cpu;
    let (d, l) = (16, 40);
    let sae = GatedAutoencoder::from_tensors(
        Tensor::randn(0f32, 0.5, (d, l), &dev).unwrap(),
        Tensor::randn(0f32, 0.1, l, &dev).unwrap(),
        Tensor::randn(0f32, 0.3, l, &dev).unwrap(),
        Tensor::randn(0f32, 0.1, l, &dev).unwrap(),
        Tensor::randn(0f32, 0.5, (l, d), &dev).unwrap(),
        Tensor::randn(0f32, 0.1, d, &dev).unwrap(),
    )
    .unwrap()
    .with_input_normalization(InputNormalization::LayerNorm)
    .with_skip(Tensor::randn(0f32, 0.2, (d, d), &dev).unwrap())
    .unwrap();
    let im = vene::get_intervenable_with_custom_autoencoder(
        model("gpt2"),
        std::sync::Arc::new(sae),
        vec![2, 9, 33],
        1,
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    im.save(dir.path()).unwrap();
    let back = IntervenableModel::load(dir.path(), model("gpt2")).unwrap();
    assert_eq!(state_of(&back), state_of(&im));
    let hp = back.interventions()[0].hyperparams();
    assert_eq!(hp["autoencoder_kind"], "gated");
    assert_eq!(
        hp["autoencoder_settings"]["normalize_activations"],
        "layer_norm"
    );
    let o = oracle("gpt2");
    let req = ForwardRequest::new(get(&o, "gpt2.base_input_ids"))
        .source(get(&o, "gpt2.source_input_ids"))
        .locations(UnitLocations::pair(5, 3));
    let x = im.forward(&req).unwrap().intervened;
    let y = back.forward(&req).unwrap().intervened;
    assert_eq!(max_abs_diff(&x, &y), 0.0);
    assert!(max_abs_diff(&x, &get(&o, "gpt2.base_logits")) > 1e-4);
}
