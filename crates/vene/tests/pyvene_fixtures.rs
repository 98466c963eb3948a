//! The facade against pyvene's numbers (tests/fixtures/pyvene), on tiny GPT-2 and Llama.

mod common;

use std::sync::Arc;

use common::*;
use vene::autoencoder::AutoencoderLayer;
use vene::hooks::{Component, Unit};
use vene::interventions::JumpReLUAutoencoderIntervention;
use vene::{
    get_intervenable_with_autoencoder, ForwardRequest, IntervenableConfig, IntervenableModel,
    RepresentationConfig, Subspaces, UnitLoc, UnitLocations,
};

const MODELS: [&str; 2] = ["gpt2", "llama"];

fn one_pos() -> UnitLocations {
    UnitLocations::from_json_str(r#"{"sources->base": [[[[5],[6]]], [[[4],[2]]]]}"#).unwrap()
}

fn two_pos() -> UnitLocations {
    UnitLocations::from_json_str(r#"{"sources->base": [[[[5,6],[6,5]]], [[[4,2],[2,4]]]]}"#)
        .unwrap()
}

fn ae_layer(
    o: &std::collections::HashMap<String, candle_core::Tensor>,
    case: &str,
) -> AutoencoderLayer {
    AutoencoderLayer::from_tensors(
        get(o, &format!("{case}.autoencoder.encoder.0.weight")),
        get(o, &format!("{case}.autoencoder.encoder.0.bias")),
        get(o, &format!("{case}.autoencoder.decoder.0.weight")),
        get(o, &format!("{case}.autoencoder.decoder.0.bias")),
    )
    .unwrap()
}

#[test]
fn autoencoder_cases_match_pyvene() {
    for m in MODELS {
        let o = oracle(m);
        let base = get(&o, &format!("{m}.base_input_ids"));
        let src = get(&o, &format!("{m}.source_input_ids"));
        let base_logits = get(&o, &format!("{m}.base_logits"));
        for (case, dims) in [
            ("ae_idx", vec![3, 7, 11, 20, 31]),
            ("ae_default_dim", vec![16]),
        ] {
            let case = format!("{m}.{case}");
            let req = ForwardRequest::new(base.clone())
                .source(src.clone())
                .locations(one_pos())
                .output_original(true);
            // through the tutorial helper
            let iv =
                get_intervenable_with_autoencoder(model(m), ae_layer(&o, &case), dims.clone(), 1)
                    .unwrap();
            let out = iv.forward(&req).unwrap();
            let expected = get(&o, &format!("{case}.intervened_logits"));
            assert_intervened(&case, &out.intervened, &expected, &base_logits);
            let orig = out.original.unwrap();
            assert!(
                max_abs_diff(&orig, &base_logits) <= 1e-5,
                "{case}: original logits"
            );
            // through a config holding the intervention object
            let obj = vene::interventions::AutoencoderIntervention::from_layer(ae_layer(&o, &case))
                .unwrap()
                .with_interchange_dim(dims)
                .unwrap();
            let cfg =
                IntervenableConfig::new(vec![RepresentationConfig::new(1, Component::BlockOutput)
                    .latent_dim(32)
                    .intervention(Arc::new(obj))]);
            let iv = IntervenableModel::new(cfg, model(m)).unwrap();
            assert_eq!(
                iv.keys(),
                vec!["layer_1_comp_block_output_unit_pos_nunit_1#0"]
            );
            let out = iv.forward(&req).unwrap();
            assert_intervened(
                &format!("{case} (config)"),
                &out.intervened,
                &expected,
                &base_logits,
            );
        }
    }
}

#[test]
fn jumprelu_cases_match_pyvene() {
    for m in MODELS {
        let o = oracle(m);
        let base = get(&o, &format!("{m}.base_input_ids"));
        let src = get(&o, &format!("{m}.source_input_ids"));
        let base_logits = get(&o, &format!("{m}.base_logits"));
        for (case, sub) in [
            ("jumprelu_default", None),
            ("jumprelu_sub", Some(vec![2, 5, 17])),
        ] {
            let case = format!("{m}.{case}");
            let t = |n: &str| get(&o, &format!("{case}.{n}"));
            let iv = JumpReLUAutoencoderIntervention::from_tensors(
                t("W_enc"),
                t("b_enc"),
                t("W_dec"),
                t("b_dec"),
                t("threshold"),
            )
            .unwrap();
            let cfg =
                IntervenableConfig::new(vec![
                    RepresentationConfig::new(1, Component::BlockOutput).intervention(Arc::new(iv))
                ]);
            let im = IntervenableModel::new(cfg, model(m)).unwrap();
            let mut req = ForwardRequest::new(base.clone())
                .source(src.clone())
                .locations(two_pos());
            if let Some(s) = sub {
                req = req.subspaces(Subspaces::Ids(s));
            }
            let out = im.forward(&req).unwrap();
            assert_intervened(
                &case,
                &out.intervened,
                &t("intervened_logits"),
                &base_logits,
            );
        }
    }
}

#[test]
fn vanilla_pair_and_partition_match_pyvene() {
    for m in MODELS {
        let o = oracle(m);
        let base = get(&o, &format!("{m}.base_input_ids"));
        let src = get(&o, &format!("{m}.source_input_ids"));
        let base_logits = get(&o, &format!("{m}.base_logits"));
        let cfg = IntervenableConfig::from_json_str(r#"{"layer": 0, "component": "block_output"}"#)
            .unwrap();
        let im = IntervenableModel::new(cfg, model(m)).unwrap();
        let locs = UnitLocations::from_json_str(r#"{"sources->base": [5, 3]}"#).unwrap();
        let req = ForwardRequest::new(base.clone())
            .source(src.clone())
            .locations(locs.clone());
        let out = im.forward(&req).unwrap();
        let case = format!("{m}.vanilla.l0.block_output.s5_b3");
        assert_intervened(
            &case,
            &out.intervened,
            &get(&o, &format!("{case}.logits")),
            &base_logits,
        );

        let cfg =
            IntervenableConfig::new(vec![RepresentationConfig::new(0, Component::BlockOutput)
                .subspace_partition(vec![vec![0, 4], vec![4, 16]])]);
        let im = IntervenableModel::new(cfg, model(m)).unwrap();
        let out = im
            .forward(&req.clone().subspaces(Subspaces::Id(0)))
            .unwrap();
        let case = format!("{case}.subspace0");
        assert_intervened(
            &case,
            &out.intervened,
            &get(&o, &format!("{case}.logits")),
            &base_logits,
        );
    }
}

#[test]
fn collect_returns_base_units_and_leaves_output() {
    for m in MODELS {
        let o = oracle(m);
        let base = get(&o, &format!("{m}.base_input_ids"));
        let base_logits = get(&o, &format!("{m}.base_logits"));
        let cfg = IntervenableConfig::from_components([(
            1,
            Component::BlockOutput,
            "CollectIntervention",
        )]);
        let im = IntervenableModel::new(cfg, model(m)).unwrap();
        let locs = UnitLocations::from_json_str(r#"{"base": [[[1, 3], [1, 3]]]}"#).unwrap();
        let out = im
            .forward(&ForwardRequest::new(base).locations(locs))
            .unwrap();
        assert_eq!(out.collected.len(), 1);
        let expected = get(&o, &format!("{m}.collect.l1.block_output.base_pos1_3"));
        assert!(
            max_abs_diff(&out.collected[0], &expected) <= 1e-5,
            "{m}: collected"
        );
        assert!(
            max_abs_diff(&out.intervened, &base_logits) <= 1e-5,
            "{m}: output unchanged"
        );
    }
}

#[test]
fn constant_source_cases_match_pyvene() {
    for m in MODELS {
        let o = oracle(m);
        let base = get(&o, &format!("{m}.base_input_ids"));
        let base_logits = get(&o, &format!("{m}.base_logits"));
        let vec = get(&o, &format!("{m}.const_source_vec"));
        for ty in [
            "AdditionIntervention",
            "SubtractionIntervention",
            "ZeroIntervention",
            "VanillaIntervention",
        ] {
            let cfg = IntervenableConfig::from_components([(0, Component::MlpOutput, ty)]);
            let im = IntervenableModel::new(cfg, model(m)).unwrap();
            let mut req =
                ForwardRequest::new(base.clone()).locations(UnitLocations::base_position(3));
            if ty != "ZeroIntervention" {
                req = req.source_representation(vec.clone());
            }
            let out = im.forward(&req).unwrap();
            let key = format!("{m}.const.{ty}.l0.mlp_output.b3.logits");
            assert_intervened(&key, &out.intervened, &get(&o, &key), &base_logits);
            // the same constant given in the config
            if ty != "ZeroIntervention" {
                let cfg = IntervenableConfig::new(vec![RepresentationConfig::new(
                    0,
                    Component::MlpOutput,
                )
                .intervention_type(ty)
                .source_representation(vec.clone())]);
                let im = IntervenableModel::new(cfg, model(m)).unwrap();
                let out = im
                    .forward(
                        &ForwardRequest::new(base.clone())
                            .locations(UnitLocations::base_position(3)),
                    )
                    .unwrap();
                assert_intervened(
                    &format!("{key} (config)"),
                    &out.intervened,
                    &get(&o, &key),
                    &base_logits,
                );
            }
        }
    }
}

#[test]
fn vanilla_sweep_over_every_component_matches_pyvene() {
    let plain = [
        "block_input",
        "block_output",
        "mlp_activation",
        "mlp_output",
        "mlp_input",
        "attention_value_output",
        "attention_output",
        "attention_input",
        "query_output",
        "key_output",
        "value_output",
    ];
    let heads = [
        "head_attention_value_output",
        "head_query_output",
        "head_key_output",
        "head_value_output",
    ];
    for m in MODELS {
        let o = oracle(m);
        let base = get(&o, &format!("{m}.base_input_ids"));
        let src = get(&o, &format!("{m}.source_input_ids"));
        let base_logits = get(&o, &format!("{m}.base_logits"));
        for c in plain {
            let comp: Component = c.parse().unwrap();
            let cfg = IntervenableConfig::from_components([(1, comp, "VanillaIntervention")]);
            let im = IntervenableModel::new(cfg, model(m)).unwrap();
            let out = im
                .forward(
                    &ForwardRequest::new(base.clone())
                        .source(src.clone())
                        .locations(one_pos()),
                )
                .unwrap();
            let key = format!("{m}.sweep.vanilla.l1.{c}.logits");
            assert_intervened(&key, &out.intervened, &get(&o, &key), &base_logits);
            // collecting every position reproduces pyvene's view of the component
            let cfg = IntervenableConfig::from_components([(1, comp, "CollectIntervention")]);
            let im = IntervenableModel::new(cfg, model(m)).unwrap();
            let out = im.forward(&ForwardRequest::new(base.clone())).unwrap();
            let key = format!("{m}.sweep.collect.l1.{c}.base_allpos");
            assert!(
                max_abs_diff(&out.collected[0], &get(&o, &key)) <= 1e-5,
                "{key}"
            );
        }
        for c in heads {
            let comp: Component = c.parse().unwrap();
            let cfg =
                IntervenableConfig::new(vec![RepresentationConfig::new(1, comp).unit(Unit::HPos)]);
            let im = IntervenableModel::new(cfg, model(m)).unwrap();
            let locs = UnitLocations::full(
                Some(vec![Some(UnitLoc::head_positions(
                    vec![vec![1]; 2],
                    vec![vec![5]; 2],
                ))]),
                vec![Some(UnitLoc::head_positions(
                    vec![vec![1]; 2],
                    vec![vec![4]; 2],
                ))],
            );
            let parsed = UnitLocations::from_json_str(
                r#"{"sources->base": [[[[[1],[1]],[[5],[5]]]], [[[[1],[1]],[[4],[4]]]]]}"#,
            )
            .unwrap();
            assert_eq!(locs, parsed);
            let out = im
                .forward(
                    &ForwardRequest::new(base.clone())
                        .source(src.clone())
                        .locations(locs),
                )
                .unwrap();
            let key = format!("{m}.sweep.vanilla.l1.{c}.h1.logits");
            assert_intervened(&key, &out.intervened, &get(&o, &key), &base_logits);
        }
    }
}
