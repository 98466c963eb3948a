//! Interventions on `attention_weight` (attention probabilities `[batch, heads, query, key]`)
//! against pyvene's numbers (tests/fixtures/pyvene-attention, made by
//! scripts/make_attention_weight_fixture.py) and against a by-hand computation.

mod common;

use candle_core::{Device, Tensor, D};
use common::*;
use vene::hooks::{Component, Unit};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, RepresentationConfig, UnitLoc,
    UnitLocations,
};

fn fixture() -> std::collections::HashMap<String, Tensor> {
    vene_testutil::load_tensors(
        vene_testutil::fixtures().join("pyvene-attention/attention_weight.safetensors"),
    )
}

fn one(layer: usize, c: Component, unit: Unit, kind: &str, n: usize) -> IntervenableConfig {
    IntervenableConfig::new(vec![RepresentationConfig::new(layer, c)
        .unit(unit)
        .max_number_of_units(n)
        .intervention_type(kind)])
}

fn collect(iv: &IntervenableModel<vene::models::Model>, base: &Tensor, loc: UnitLoc) -> Tensor {
    let req =
        ForwardRequest::new(base.clone()).locations(UnitLocations::full(None, vec![Some(loc)]));
    let out = iv.forward(&req).unwrap();
    assert_eq!(out.collected.len(), 1);
    out.collected[0].clone()
}

#[test]
fn collect_matches_pyvene_for_pos_h_and_hpos() {
    let o = fixture();
    let base = get(&o, "base_input_ids");
    let heads = vec![vec![1], vec![0]];
    for (unit, key) in [(Unit::Pos, "collect_pos"), (Unit::H, "collect_h")] {
        let iv = IntervenableModel::new(
            one(
                1,
                Component::AttentionWeight,
                unit,
                "CollectIntervention",
                1,
            ),
            model("gpt2"),
        )
        .unwrap();
        let got = collect(&iv, &base, UnitLoc::Units(heads.clone()));
        let want = get(&o, key);
        assert_eq!(got.dims(), want.dims(), "{key}");
        assert!(max_abs_diff(&got, &want) <= 1e-5, "{key}");
        // rows of probabilities: every row sums to 1
        let sums = got.sum(D::Minus1).unwrap().flatten_all().unwrap();
        for s in sums.to_vec1::<f32>().unwrap() {
            assert!((s - 1.0).abs() < 1e-5, "{key}: a row sums to {s}");
        }
    }
    let iv = IntervenableModel::new(
        one(
            0,
            Component::AttentionWeight,
            Unit::HPos,
            "CollectIntervention",
            2,
        ),
        model("gpt2"),
    )
    .unwrap();
    let got = collect(
        &iv,
        &base,
        UnitLoc::head_positions(heads, vec![vec![5, 2], vec![3, 4]]),
    );
    let want = get(&o, "collect_hpos");
    assert_eq!(got.dims(), &[2, 1, 2, 6]);
    assert!(max_abs_diff(&got, &want) <= 1e-5);
}

#[test]
fn vanilla_interchange_of_heads_matches_pyvene() {
    let o = fixture();
    let base = get(&o, "base_input_ids");
    let src = get(&o, "source_input_ids");
    let base_logits = get(&o, "base_logits");
    // pyvene: {"sources->base": ([[[0], [1]]], [[[1], [1]]])}, unit pos = heads
    let loc =
        UnitLocations::from_json_str(r#"{"sources->base": [[[[0],[1]]], [[[1],[1]]]]}"#).unwrap();
    for layer in [0, 1] {
        let iv = IntervenableModel::new(
            one(
                layer,
                Component::AttentionWeight,
                Unit::Pos,
                "VanillaIntervention",
                1,
            ),
            model("gpt2"),
        )
        .unwrap();
        // pyvene sizes the unit by max_position_embeddings (n_positions 32 here)
        assert_eq!(iv.interventions()[0].embed_dim(), 32);
        assert_eq!(
            iv.keys(),
            vec![format!(
                "layer_{layer}_comp_attention_weight_unit_pos_nunit_1#0"
            )]
        );
        let req = ForwardRequest::new(base.clone())
            .source(src.clone())
            .locations(loc.clone());
        let out = iv.forward(&req).unwrap();
        let want = get(&o, &format!("vanilla_pos_layer{layer}_logits"));
        assert_intervened(
            &format!("vanilla layer {layer}"),
            &out.intervened,
            &want,
            &base_logits,
        );
    }
}

/// Swapping the probabilities of the last query position (every head) from a source gives,
/// at that position, `P_src @ V_base` per head; every other position is the base's.
#[test]
fn swapping_the_last_query_row_gives_source_probabilities_times_base_values() {
    let o = fixture();
    let base = get(&o, "base_input_ids");
    let src = get(&o, "source_input_ids");
    let (b, t) = base.dims2().unwrap();
    let (layer, n_heads, hd) = (1, 2, 8);
    let last = t - 1;
    let all_heads = vec![(0..n_heads).collect::<Vec<_>>(); b];
    let hp = UnitLoc::head_positions(all_heads.clone(), vec![vec![last]; b]);
    // the source's probabilities at the last query, every head: [b, heads, 1, t]
    let probe = |c: Component, unit: Unit, input: &Tensor, loc: UnitLoc| {
        let iv =
            IntervenableModel::new(one(layer, c, unit, "CollectIntervention", 1), model("gpt2"))
                .unwrap();
        collect(&iv, input, loc)
    };
    let p_src = probe(Component::AttentionWeight, Unit::HPos, &src, hp.clone());
    assert_eq!(p_src.dims(), &[b, n_heads, 1, t]);
    // the base's values, every position: [b, t, heads * hd]
    let every = UnitLoc::Units(vec![(0..t).collect(); b]);
    let v_base = probe(Component::ValueOutput, Unit::Pos, &base, every.clone());
    let v_base = v_base
        .reshape((b, t, n_heads, hd))
        .unwrap()
        .transpose(1, 2)
        .unwrap();
    // expected attention_value_output at the last position: [b, heads, 1, hd] -> [b, heads*hd]
    let expected = p_src
        .matmul(&v_base.contiguous().unwrap())
        .unwrap()
        .reshape((b, n_heads * hd))
        .unwrap();
    // intervened run: swap at attention_weight, collect attention_value_output after it
    let cfg = IntervenableConfig::new(vec![
        RepresentationConfig::new(layer, Component::AttentionWeight)
            .unit(Unit::HPos)
            .intervention_type("VanillaIntervention"),
        RepresentationConfig::new(layer, Component::AttentionValueOutput)
            .intervention_type("CollectIntervention"),
    ]);
    let iv = IntervenableModel::new(cfg, model("gpt2")).unwrap();
    let req = ForwardRequest::new(base.clone())
        .source(src.clone())
        .no_source()
        .locations(UnitLocations::full(
            Some(vec![Some(hp.clone()), None]),
            vec![Some(hp), Some(every.clone())],
        ))
        .output_original(true);
    let out = iv.forward(&req).unwrap();
    let got = &out.collected[0]; // [b, t, heads*hd]
    let got_last = got.narrow(1, last, 1).unwrap().squeeze(1).unwrap();
    assert!(
        max_abs_diff(&got_last, &expected) <= 1e-5,
        "last position: {}",
        max_abs_diff(&got_last, &expected)
    );
    // the other positions are the base's own; the last one moved (by ~5e-4 in this tiny
    // model whose attention is near uniform: 50 times the tolerance above)
    let plain = probe(Component::AttentionValueOutput, Unit::Pos, &base, every);
    assert!(
        max_abs_diff(
            &got.narrow(1, 0, last).unwrap(),
            &plain.narrow(1, 0, last).unwrap()
        ) <= 1e-6
    );
    assert!(
        max_abs_diff(
            &got_last,
            &plain.narrow(1, last, 1).unwrap().squeeze(1).unwrap()
        ) > 1e-4
    );
    // the logits before the last position are unchanged, the last one's moved
    let orig = out.original.unwrap();
    let d = |a: &Tensor, s: usize, n: usize| a.narrow(1, s, n).unwrap();
    assert!(max_abs_diff(&d(&out.intervened, 0, last), &d(&orig, 0, last)) <= 1e-6);
    assert!(max_abs_diff(&d(&out.intervened, last, 1), &d(&orig, last, 1)) > 1e-5);
}

#[test]
fn wrong_locations_are_clear_errors() {
    let iv = IntervenableModel::new(
        one(
            0,
            Component::AttentionWeight,
            Unit::Pos,
            "CollectIntervention",
            1,
        ),
        model("gpt2"),
    )
    .unwrap();
    let base = Tensor::new(&[[1u32, 2, 3]], &Device::Cpu).unwrap();
    let req = ForwardRequest::new(base.clone()).locations(UnitLocations::full(
        None,
        vec![Some(UnitLoc::Units(vec![vec![2]]))],
    ));
    let err = iv.forward(&req).unwrap_err().to_string();
    assert!(err.contains("head 2"), "{err}");
    let hp = UnitLoc::head_positions(vec![vec![0]], vec![vec![1]]);
    let req = ForwardRequest::new(base).locations(UnitLocations::full(None, vec![Some(hp)]));
    let err = iv.forward(&req).unwrap_err().to_string();
    assert!(err.contains("[example][heads]"), "{err}");
}
