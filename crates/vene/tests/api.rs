//! Facade behaviour: serial mode, skip, threads, generation, and bad input.

mod common;

use candle_core::{DType, Device, Tensor};
use common::*;
use vene::autoencoder::AutoencoderLayer;
use vene::hooks::{Component, HookError, NoHooks, Unit};
use vene::interventions::InterventionError;
use vene::models::GenerationConfig;
use vene::{
    get_intervenable_with_autoencoder, ForwardRequest, IntervenableConfig, IntervenableModel,
    InterveneOn, Mode, RepresentationConfig, UnitLoc, UnitLocations, VeneError,
};

fn ids(o: &std::collections::HashMap<String, Tensor>, m: &str) -> (Tensor, Tensor) {
    (
        get(o, &format!("{m}.base_input_ids")),
        get(o, &format!("{m}.source_input_ids")),
    )
}

#[test]
fn serial_mode_chains_sources() {
    let o = oracle("gpt2");
    let (base, src) = ids(&o, "gpt2");
    // source 1 is the source with its rows swapped, so that the chain is visible
    let src1 = Tensor::cat(
        &[
            src.get(1).unwrap().unsqueeze(0).unwrap(),
            src.get(0).unwrap().unsqueeze(0).unwrap(),
        ],
        0,
    )
    .unwrap();
    let cfg = IntervenableConfig::from_components([
        (0, Component::BlockOutput, "VanillaIntervention"),
        (0, Component::BlockOutput, "VanillaIntervention"),
    ])
    .mode(Mode::Serial);
    let im = IntervenableModel::new(cfg, model("gpt2")).unwrap();
    let locs = UnitLocations::from_json_str(
        r#"{"source_0->source_1": [[[[5],[5]]], [[[1],[1]]]], "source_1->base": [[[[1],[1]]], [[[3],[3]]]]}"#,
    )
    .unwrap();
    let serial = im
        .forward(
            &ForwardRequest::new(base.clone())
                .source(src.clone())
                .source(src1.clone())
                .locations(locs),
        )
        .unwrap()
        .intervened;
    // a full swap chained through source 1's position 1 is source 0's position 5 into base 3
    let single = IntervenableModel::new(
        IntervenableConfig::from_components([(0, Component::BlockOutput, "VanillaIntervention")]),
        model("gpt2"),
    )
    .unwrap();
    let direct = single
        .forward(
            &ForwardRequest::new(base.clone())
                .source(src)
                .locations(UnitLocations::pair(5, 3)),
        )
        .unwrap()
        .intervened;
    assert!(max_abs_diff(&serial, &direct) <= 1e-6);
    let from_src1 = single
        .forward(
            &ForwardRequest::new(base)
                .source(src1)
                .locations(UnitLocations::pair(1, 3)),
        )
        .unwrap()
        .intervened;
    assert!(max_abs_diff(&serial, &from_src1) > 1e-4);
}

#[test]
fn skip_replaces_output_by_input_and_groups_share_a_source() {
    let o = oracle("gpt2");
    let (base, _) = ids(&o, "gpt2");
    let cfg = IntervenableConfig::from_components([
        (1, Component::BlockOutput, "SkipIntervention"),
        (1, Component::BlockOutput, "CollectIntervention"),
    ]);
    let im = IntervenableModel::new(cfg, model("gpt2")).unwrap();
    let out = im
        .forward(
            &ForwardRequest::new(base).locations(UnitLocations::base(vec![vec![vec![3]; 2]; 2])),
        )
        .unwrap();
    let block_in = get(&o, "gpt2.sweep.collect.l1.block_input.base_allpos");
    let expected = block_in.narrow(1, 3, 1).unwrap();
    assert!(max_abs_diff(&out.collected[0], &expected) <= 1e-5);
    // group keys: two interventions, one group, one source
    let cfg = IntervenableConfig::new(vec![
        RepresentationConfig::new(0, Component::BlockOutput).group_key(0),
        RepresentationConfig::new(1, Component::BlockOutput).group_key(0),
    ]);
    let im = IntervenableModel::new(cfg, model("gpt2")).unwrap();
    assert_eq!(im.n_groups(), 1);
    let bad = IntervenableConfig::new(vec![
        RepresentationConfig::new(0, Component::BlockOutput).group_key(1),
        RepresentationConfig::new(1, Component::BlockOutput).group_key(0),
    ]);
    assert!(matches!(
        IntervenableModel::new(bad, model("gpt2")),
        Err(VeneError::Config(_))
    ));
}

#[test]
fn forwards_from_threads_match_sequential() {
    let im = gpt2_ae_idx_model();
    let o = oracle("gpt2");
    let (base, src) = ids(&o, "gpt2");
    let reqs: Vec<ForwardRequest> = (0..4)
        .map(|i| {
            ForwardRequest::new(base.clone())
                .source(src.clone())
                .locations(UnitLocations::pair(5 - i % 2, 3 + i % 3))
        })
        .collect();
    let seq: Vec<Tensor> = reqs
        .iter()
        .map(|r| im.forward(r).unwrap().intervened)
        .collect();
    let par: Vec<Tensor> = std::thread::scope(|s| {
        let hs: Vec<_> = reqs
            .iter()
            .map(|r| s.spawn(|| im.forward(r).unwrap().intervened))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (a, b) in seq.iter().zip(&par) {
        assert_eq!(max_abs_diff(a, b), 0.0);
    }
    assert!(max_abs_diff(&seq[0], &seq[1]) > 0.0);
}

#[test]
fn generate_intervenes_on_the_prompt_or_the_steps() {
    let o = oracle("gpt2");
    let (base, src) = ids(&o, "gpt2");
    let prompt = base.get(0).unwrap().unsqueeze(0).unwrap();
    let source = src.get(0).unwrap().unsqueeze(0).unwrap();
    let cfg =
        IntervenableConfig::from_components([(0, Component::BlockInput, "VanillaIntervention")]);
    let im = IntervenableModel::new(cfg, model("gpt2")).unwrap();
    let gen = GenerationConfig {
        max_new_tokens: 6,
        ..Default::default()
    };
    // swapping block_input of layer 0 at the same position swaps the token
    let req = ForwardRequest::new(prompt.clone())
        .source(source.clone())
        .locations(UnitLocations::position(5));
    let ours = im.generate(&req, InterveneOn::Prompt, &gen).unwrap();
    let mut tokens = prompt
        .squeeze(0)
        .unwrap()
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    let src_tokens = source
        .squeeze(0)
        .unwrap()
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1::<u32>()
        .unwrap();
    tokens[5] = src_tokens[5];
    let expected = vene::models::generate(im.model(), &tokens, &gen, &mut NoHooks).unwrap();
    assert_eq!(ours, expected);
    // on generated steps: a constant zero embedding on every new token changes the tail
    let zero = IntervenableModel::new(
        IntervenableConfig::from_components([(0, Component::BlockInput, "ZeroIntervention")]),
        model("gpt2"),
    )
    .unwrap();
    let plain = vene::models::generate(zero.model(), &tokens, &gen, &mut NoHooks).unwrap();
    let req = ForwardRequest::new(
        Tensor::new(tokens.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap(),
    );
    let steps = zero
        .generate(&req, InterveneOn::GeneratedSteps, &gen)
        .unwrap();
    assert_eq!(steps[0], plain[0], "the prompt is not intervened");
    assert_ne!(steps, plain);
}

#[test]
fn bad_input_gets_typed_errors() {
    let o = oracle("gpt2");
    let (base, src) = ids(&o, "gpt2");
    let im = IntervenableModel::new(
        IntervenableConfig::from_components([(0, Component::BlockOutput, "VanillaIntervention")]),
        model("gpt2"),
    )
    .unwrap();
    // source batch
    let one = src.narrow(0, 0, 1).unwrap();
    let e = im
        .forward(
            &ForwardRequest::new(base.clone())
                .source(one)
                .locations(UnitLocations::pair(1, 1)),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            VeneError::SourceBatch {
                source_index: 0,
                got: 1,
                base: 2
            }
        ),
        "{e}"
    );
    // position beyond the sequence (base has 6 tokens)
    let e = im
        .forward(
            &ForwardRequest::new(base.clone())
                .source(src.clone())
                .locations(UnitLocations::pair(1, 6)),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            VeneError::Hook(HookError::PositionOutOfRange {
                position: 6,
                len: 6,
                ..
            })
        ),
        "{e}"
    );
    // head beyond n_heads (GPT-2 tiny has 2)
    let heads = IntervenableModel::new(
        IntervenableConfig::new(vec![RepresentationConfig::new(
            1,
            Component::HeadQueryOutput,
        )
        .unit(Unit::HPos)]),
        model("gpt2"),
    )
    .unwrap();
    let loc = |h: usize| Some(UnitLoc::head_positions(vec![vec![h]; 2], vec![vec![1]; 2]));
    let e = heads
        .forward(
            &ForwardRequest::new(base.clone())
                .source(src.clone())
                .locations(UnitLocations::full(Some(vec![loc(0)]), vec![loc(2)])),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            VeneError::Hook(HookError::HeadOutOfRange {
                head: 2,
                n_heads: 2,
                ..
            })
        ),
        "{e}"
    );
    // dims beyond latent_dim, autoencoder width
    let dev = Device::Cpu;
    let ae = AutoencoderLayer::new(16, 32, DType::F32, &dev).unwrap();
    let e = get_intervenable_with_autoencoder(model("gpt2"), ae, vec![3, 32], 1).unwrap_err();
    assert!(
        matches!(
            e,
            VeneError::LatentDimOutOfRange {
                dim: 32,
                latent_dim: 32
            }
        ),
        "{e}"
    );
    let ae8 = AutoencoderLayer::new(8, 32, DType::F32, &dev).unwrap();
    let e = get_intervenable_with_autoencoder(model("gpt2"), ae8, vec![1], 1).unwrap_err();
    assert!(
        matches!(
            e,
            VeneError::AutoencoderWidth {
                input_dim: 8,
                width: 16,
                ..
            }
        ),
        "{e}"
    );
    // unknown intervention type, unknown component, layer out of range
    let cfg = IntervenableConfig::from_components([(0, Component::BlockOutput, "FooIntervention")]);
    let e = IntervenableModel::new(cfg, model("gpt2")).unwrap_err();
    assert!(
        matches!(
            e,
            VeneError::Intervention(InterventionError::UnknownType(_))
        ),
        "{e}"
    );
    assert!(IntervenableConfig::from_json_str(r#"{"component": "block_outptu"}"#).is_err());
    let cfg =
        IntervenableConfig::from_components([(5, Component::BlockOutput, "VanillaIntervention")]);
    let e = IntervenableModel::new(cfg, model("gpt2")).unwrap_err();
    assert!(
        matches!(
            e,
            VeneError::Hook(HookError::LayerOutOfRange {
                layer: 5,
                n_layers: 2
            })
        ),
        "{e}"
    );
    // an intervention error raised inside the model is given back as itself
    let sub = vene::Subspaces::Ids(vec![16]);
    let e = im
        .forward(
            &ForwardRequest::new(base)
                .source(src)
                .locations(UnitLocations::pair(1, 1))
                .subspaces(sub),
        )
        .unwrap_err();
    assert!(
        matches!(
            e,
            VeneError::Intervention(InterventionError::DimOutOfRange { index: 16, .. })
        ),
        "{e}"
    );
}

#[test]
fn left_padded_batch_matches_the_fixture() {
    let o = oracle("gpt2");
    let (base, src) = ids(&o, "gpt2");
    let im = gpt2_ae_idx_model();
    // example 1 keeps its first 5 tokens, left-padded by one
    let b = base.to_dtype(DType::U32).unwrap().to_vec2::<u32>().unwrap();
    let rows = vec![b[0].clone(), [vec![0], b[1][..5].to_vec()].concat()];
    let padded = Tensor::new(rows, &Device::Cpu).unwrap();
    let mask = Tensor::new(vec![vec![1u32; 6], vec![0, 1, 1, 1, 1, 1]], &Device::Cpu).unwrap();
    let locs =
        UnitLocations::sources_to_base(vec![vec![vec![5], vec![6]]], vec![vec![vec![4], vec![3]]]);
    let out = im
        .forward(
            &ForwardRequest::new(vene::Input::with_mask(padded, mask))
                .source(src)
                .locations(locs),
        )
        .unwrap();
    let expected = get(&o, "gpt2.ae_idx.intervened_logits");
    let ours_row1 = out.intervened.get(1).unwrap().narrow(0, 1, 5).unwrap();
    let exp_row1 = expected.get(1).unwrap().narrow(0, 0, 5).unwrap();
    assert!(max_abs_diff(&ours_row1, &exp_row1) <= 1e-5);
    assert!(max_abs_diff(&out.intervened.get(0).unwrap(), &expected.get(0).unwrap()) <= 1e-5);
}

/// Writes an SAELens folder (`cfg.json` + `sae_weights.safetensors`) of a `16 -> 24` standard
/// SAE named `hook` (or with no hook name) under `root/name`.
fn write_saelens(root: &std::path::Path, name: &str, hook: Option<&str>) -> std::path::PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let dev = Device::Cpu;
    let mut tensors = std::collections::HashMap::new();
    tensors.insert(
        "W_enc".to_string(),
        Tensor::randn(0f32, 0.3, (16, 24), &dev).unwrap(),
    );
    tensors.insert(
        "b_enc".to_string(),
        Tensor::randn(0f32, 0.1, 24, &dev).unwrap(),
    );
    tensors.insert(
        "W_dec".to_string(),
        Tensor::randn(0f32, 0.3, (24, 16), &dev).unwrap(),
    );
    tensors.insert(
        "b_dec".to_string(),
        Tensor::randn(0f32, 0.1, 16, &dev).unwrap(),
    );
    candle_core::safetensors::save(&tensors, dir.join("sae_weights.safetensors")).unwrap();
    let mut cfg = serde_json::json!({
        "architecture": "standard", "d_in": 16, "d_sae": 24, "dtype": "float32",
        "device": "cpu", "apply_b_dec_to_input": true, "normalize_activations": "none",
    });
    if let Some(h) = hook {
        cfg["hook_name"] = h.into();
    }
    std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
    dir
}

/// `get_intervenable_with_sae` places an SAE at the site its files name: SAELens's
/// `blocks.1.hook_resid_pre` is block_input of layer 1, which reads what block_output of layer
/// 0 reads, so the interchange equals the helper's at layer 0; `hook_resid_post` of layer 1
/// equals the helper's at layer 1. Files that name no site are refused.
#[test]
fn get_intervenable_with_sae_uses_the_saes_own_site() {
    let tmp = tempfile::tempdir().unwrap();
    let o = oracle("gpt2");
    let (base, source) = ids(&o, "gpt2");
    let dims = vec![1, 5, 7, 20];
    let run = |iv: &IntervenableModel<vene::models::Model>| {
        iv.forward(
            &ForwardRequest::new(base.clone())
                .source(source.clone())
                .locations(UnitLocations::pair(4, 2)),
        )
        .unwrap()
        .intervened
    };
    for (hook, helper_layer) in [
        ("blocks.1.hook_resid_pre", 0),
        ("blocks.1.hook_resid_post", 1),
    ] {
        let dir = write_saelens(tmp.path(), hook, Some(hook));
        let sae = vene::autoencoder::load_sae(&dir).unwrap();
        let by_site = vene::get_intervenable_with_sae(model("gpt2"), sae, dims.clone()).unwrap();
        let ae = vene::autoencoder::load_sae(&dir).unwrap().autoencoder;
        let by_layer = vene::get_intervenable_with_custom_autoencoder(
            model("gpt2"),
            std::sync::Arc::from(ae),
            dims.clone(),
            helper_layer,
        )
        .unwrap();
        let (a, b) = (run(&by_site), run(&by_layer));
        assert_eq!(max_abs_diff(&a, &b), 0.0, "{hook}");
        // and it does intervene: not the plain base logits
        let plain = vene::models::LanguageModel::forward(&model("gpt2"), &base, None, &mut NoHooks)
            .unwrap();
        assert!(max_abs_diff(&a, &plain) > 1e-4, "{hook}");
    }
    let dir = write_saelens(tmp.path(), "no-site", None);
    let sae = vene::autoencoder::load_sae(&dir).unwrap();
    let err = vene::get_intervenable_with_sae(model("gpt2"), sae, dims)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("files name no site"), "{err}");
}

/// An interchange at `resid_mid` (vene's extension) of the last layer: after it, a position's
/// output depends only on its own residual (the MLP is per position), so the intervened
/// logits at that position are the source's logits there.
#[test]
fn resid_mid_interchange_in_the_last_layer_gives_the_sources_logits() {
    let o = oracle("gpt2");
    let (base, source) = ids(&o, "gpt2");
    let (b, t) = base.dims2().unwrap();
    let p = t - 1;
    let config = IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::ResidMid)]);
    let iv = IntervenableModel::new(config, model("gpt2")).unwrap();
    let out = iv
        .forward(
            &ForwardRequest::new(base.clone())
                .source(source.clone())
                .locations(UnitLocations::pair(p, p)),
        )
        .unwrap();
    let source_logits =
        vene::models::LanguageModel::forward(&model("gpt2"), &source, None, &mut NoHooks).unwrap();
    let at = |x: &Tensor| x.narrow(1, p, 1).unwrap();
    assert!(max_abs_diff(&at(&out.intervened), &at(&source_logits)) < 1e-5);
    // and the earlier positions keep the base's logits
    let base_logits =
        vene::models::LanguageModel::forward(&model("gpt2"), &base, None, &mut NoHooks).unwrap();
    let head = |x: &Tensor| x.narrow(1, 0, p).unwrap();
    assert!(max_abs_diff(&head(&out.intervened), &head(&base_logits)) < 1e-5);
    assert!(max_abs_diff(&at(&base_logits), &at(&source_logits)) > 1e-3);
    assert_eq!(b, source.dim(0).unwrap());
}

/// `only_group(g, source)` on a config of several groups gives what a config of group `g`
/// alone gives; a group past the config's is a config error.
#[test]
fn only_group_runs_one_group_alone() {
    let o = oracle("gpt2");
    let (base, source) = ids(&o, "gpt2");
    let reps = [
        RepresentationConfig::new(0, Component::MlpOutput),
        RepresentationConfig::new(1, Component::AttentionOutput),
        RepresentationConfig::new(1, Component::BlockOutput)
            .intervention_type("CollectIntervention"),
    ];
    let locs = || UnitLocations::position(2);
    let all =
        IntervenableModel::new(IntervenableConfig::new(reps.to_vec()), model("gpt2")).unwrap();
    assert_eq!(all.n_groups(), 3);
    let alone = IntervenableModel::new(
        IntervenableConfig::new(vec![reps[1].clone(), reps[2].clone()]),
        model("gpt2"),
    )
    .unwrap();
    let got = all
        .forward(
            &ForwardRequest::new(base.clone())
                .only_group(1, source.clone())
                .locations(locs()),
        )
        .unwrap();
    let want = alone
        .forward(
            &ForwardRequest::new(base.clone())
                .source(source.clone())
                .no_source()
                .locations(locs()),
        )
        .unwrap();
    assert!(max_abs_diff(&got.intervened, &want.intervened) <= 1e-6);
    // the collect group (no source needed) still collected, from the intervened run
    assert_eq!(got.collected.len(), 1);
    assert!(max_abs_diff(&got.collected[0], &want.collected[0]) <= 1e-6);
    // and it is not the plain base (every group without a source run)
    let plain = all
        .forward(
            &ForwardRequest::new(base.clone())
                .no_source()
                .no_source()
                .no_source()
                .locations(locs()),
        )
        .unwrap();
    assert!(max_abs_diff(&got.intervened, &plain.intervened) > 1e-4);
    let e = all
        .forward(
            &ForwardRequest::new(base)
                .only_group(3, source)
                .locations(locs()),
        )
        .unwrap_err();
    assert!(
        matches!(e, VeneError::Config(ref m) if m.contains("only_group(3)")),
        "{e}"
    );
}

/// A config holding intervention objects round-trips through JSON: each comes back as its type
/// name and hyperparameters, and the model built from the JSON holds interventions with the
/// same hyperparameters.
#[test]
fn intervention_objects_round_trip_through_json_configs() {
    use std::sync::Arc;
    use vene::interventions::{
        BoundlessRotatedSpaceIntervention, Intervention, LowRankRotatedSpaceIntervention,
        NoiseIntervention, VanillaIntervention,
    };
    let d = 16;
    let dev = Device::Cpu;
    let boundless = BoundlessRotatedSpaceIntervention::new(d, 3, DType::F32, &dev).unwrap();
    boundless.set_temperature(0.25).unwrap();
    let objects: Vec<Arc<dyn Intervention>> = vec![
        Arc::new(VanillaIntervention::new(d).with_interchange_dim(5)),
        Arc::new({
            let mut v = VanillaIntervention::new(d);
            v.set_interchange_dim([3, 9]).unwrap();
            v
        }),
        Arc::new(LowRankRotatedSpaceIntervention::new(d, 3, 7, DType::F32, &dev).unwrap()),
        Arc::new(boundless),
        Arc::new(NoiseIntervention::with_seed(d, 11, 1, 0.5).unwrap()),
    ];
    let reps: Vec<RepresentationConfig> = objects
        .iter()
        .enumerate()
        .map(|(i, iv)| {
            RepresentationConfig::new(i % 2, Component::BlockOutput).intervention(iv.clone())
        })
        .collect();
    let json = IntervenableConfig::new(reps).to_json_string().unwrap();
    let back = IntervenableConfig::from_json_str(&json).unwrap();
    let names: Vec<&str> = back.representations.iter().map(|r| r.type_name()).collect();
    assert_eq!(
        names,
        [
            "VanillaIntervention",
            "VanillaIntervention",
            "LowRankRotatedSpaceIntervention",
            "BoundlessRotatedSpaceIntervention",
            "NoiseIntervention"
        ]
    );
    let im = IntervenableModel::new(back, model("gpt2")).unwrap();
    for (original, rebuilt) in objects.iter().zip(im.interventions()) {
        assert_eq!(rebuilt.type_name(), original.type_name());
        assert_eq!(
            rebuilt.hyperparams(),
            original.hyperparams(),
            "{}",
            original.type_name()
        );
    }
}
