//! Every family of `tests/fixtures/pyvene-families` against the tensors pyvene produced:
//! logits of padded batches, Collect and Vanilla at every component pyvene maps (heads included),
//! and an AutoencoderIntervention. Only real (unpadded) positions are compared; positions are
//! `arange(T)` on every row, as Hugging Face uses when no `position_ids` are passed.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor, D};
use serde_json::Value;
use vene::autoencoder::AutoencoderLayer;
use vene::hooks::{Component, HookableModel, Unit};
use vene::models::Model;
use vene::{
    get_intervenable_with_autoencoder, ForwardRequest, Input, IntervenableConfig,
    IntervenableModel, RepresentationConfig, Subspaces, UnitLocations,
};
use vene_testutil::{
    assert_intervened_masked, family_oracle, get, masked_max_abs_diff, max_abs_diff,
    FAMILY_FIXTURES,
};

use vene_testutil::FAMILY_NAMES as FAMILIES;

fn manifest() -> Value {
    let text = std::fs::read_to_string(format!("{FAMILY_FIXTURES}/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn model(family: &str) -> Model {
    Model::from_dir(
        format!("{FAMILY_FIXTURES}/tiny-{family}"),
        DType::F32,
        &Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("{family}: {e}"))
}

/// The base (or source) input of a family, with HF's default positions.
fn input(o: &HashMap<String, Tensor>, family: &str, which: &str) -> Input {
    let ids = get(o, &format!("{family}.{which}_input_ids"));
    let mask = get(o, &format!("{family}.{which}_attention_mask"));
    let (b, t) = ids.dims2().unwrap();
    let pos = Tensor::arange(0u32, t as u32, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
        .broadcast_as((b, t))
        .unwrap()
        .contiguous()
        .unwrap();
    Input::with_mask(ids, mask).positions(pos)
}

/// The vene component a case names (GPT-Neo's module-path cases name their equivalent).
fn component(case: &Value) -> Component {
    let name = case
        .get("semantic_equivalent")
        .and_then(Value::as_str)
        .unwrap_or_else(|| case["component"].as_str().unwrap());
    name.parse().unwrap()
}

fn layer(case: &Value, manifest: &Value) -> usize {
    case["layer"]
        .as_u64()
        .map(|l| l as usize)
        .unwrap_or_else(|| {
            manifest["families"][case["family"].as_str().unwrap()]["layer"]
                .as_u64()
                .unwrap() as usize
        })
}

fn representation(case: &Value, manifest: &Value, ty: &str, width: usize) -> RepresentationConfig {
    let comp = component(case);
    let mut r = RepresentationConfig::new(layer(case, manifest), comp).intervention_type(ty);
    if case["unit"].as_str() == Some("h.pos") {
        r = r.unit(Unit::HPos);
    }
    // pyvene collects or swaps only a prefix when its width guess is below the real width.
    if let Some(e) = prefix(case, width) {
        r = r.subspace_partition(vec![vec![0, e], vec![e, width]]);
    }
    r
}

/// pyvene's embed_dim when it is a strict prefix of the component's real width.
fn prefix(case: &Value, width: usize) -> Option<usize> {
    let comp = component(case);
    if comp.is_head() {
        return None;
    }
    case["embed_dim"]
        .as_u64()
        .map(|e| e as usize)
        .filter(|&e| e < width)
}

/// OLMo 2's attention_input / mlp_input swaps, where pyvene also edits the residual stream in
/// place (vene edits only what enters the module).
fn pyvene_edits_residual(case: &Value) -> bool {
    case["family"] == "olmo2"
        && case["kind"] == "vanilla"
        && matches!(
            case["component"].as_str(),
            Some("attention_input") | Some("mlp_input")
        )
}

#[test]
fn logits_of_padded_batches_match_hf() {
    for f in FAMILIES {
        let o = family_oracle(f);
        let m = model(f);
        for which in ["base", "source"] {
            let inp = input(&o, f, which);
            let logits = vene::models::LanguageModel::forward_with_positions(
                &m,
                &inp.ids,
                inp.mask.as_ref(),
                inp.position_ids.as_ref(),
                &mut vene::hooks::NoHooks,
            )
            .unwrap();
            let expected = get(&o, &format!("{f}.{which}_logits"));
            let d = masked_max_abs_diff(&logits, &expected, inp.mask.as_ref().unwrap());
            assert!(d <= 1e-5, "{f} {which} logits: max abs diff {d}");
        }
    }
}

#[test]
fn every_collect_and_vanilla_case_matches_pyvene() {
    let man = manifest();
    let cases = man["cases"].as_object().unwrap();
    let mut checked = 0;
    for f in FAMILIES {
        let o = family_oracle(f);
        let m = model(f);
        let base = input(&o, f, "base");
        let source = input(&o, f, "source");
        let mask = base.mask.clone().unwrap();
        let base_logits = get(&o, &format!("{f}.base_logits"));
        for (name, case) in cases {
            if case["family"] != f || case.get("error").is_some() || pyvene_edits_residual(case) {
                continue;
            }
            let kind = case["kind"].as_str().unwrap();
            if kind != "collect" && kind != "vanilla" {
                continue;
            }
            let locs = UnitLocations::from_json_str(&case["unit_locations"].to_string()).unwrap();
            let width = m.component_shape(component(case)).unwrap().width;
            let tensors = &case["tensors"];
            if kind == "collect" {
                let r = representation(case, &man, "CollectIntervention", width);
                let im = IntervenableModel::new(IntervenableConfig::new(vec![r]), m.clone())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let mut req = ForwardRequest::new(base.clone()).locations(locs);
                if prefix(case, width).is_some() {
                    req = req.subspaces(Subspaces::Id(0));
                }
                let out = im.forward(&req).unwrap_or_else(|e| panic!("{name}: {e}"));
                let expected = get(&o, tensors["collected"].as_str().unwrap());
                let ours = &out.collected[0];
                assert_eq!(ours.dims(), expected.dims(), "{name}: collected shape");
                let d = max_abs_diff(ours, &expected);
                assert!(d <= 1e-5, "{name}: collected differs by {d}");
                let d = masked_max_abs_diff(&out.intervened, &base_logits, &mask);
                assert!(d <= 1e-5, "{name}: collect changed the logits by {d}");
            } else {
                let r = representation(case, &man, "VanillaIntervention", width);
                let im = IntervenableModel::new(IntervenableConfig::new(vec![r]), m.clone())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let mut req = ForwardRequest::new(base.clone())
                    .source(source.clone())
                    .locations(locs);
                if prefix(case, width).is_some() {
                    req = req.subspaces(Subspaces::Id(0));
                }
                let out = im.forward(&req).unwrap_or_else(|e| panic!("{name}: {e}"));
                let expected = get(&o, tensors["logits"].as_str().unwrap());
                assert_intervened_masked(name, &out.intervened, &expected, &base_logits, &mask);
            }
            checked += 1;
        }
    }
    assert!(checked >= 260, "only {checked} cases checked");
}

#[test]
fn autoencoder_cases_match_pyvene() {
    let man = manifest();
    for f in FAMILIES {
        let o = family_oracle(f);
        let case = &man["cases"][format!("{f}.ae_idx")];
        let t = |k: &str| get(&o, case["tensors"][k].as_str().unwrap());
        let ae = AutoencoderLayer::from_tensors(
            t("autoencoder.encoder.0.weight"),
            t("autoencoder.encoder.0.bias"),
            t("autoencoder.decoder.0.weight"),
            t("autoencoder.decoder.0.bias"),
        )
        .unwrap();
        let dims: Vec<usize> = case["interchange_dim_effective"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let im = get_intervenable_with_autoencoder(model(f), ae, dims, layer(case, &man)).unwrap();
        let locs = UnitLocations::from_json_str(&case["unit_locations"].to_string()).unwrap();
        let base = input(&o, f, "base");
        let mask = base.mask.clone().unwrap();
        let out = im
            .forward(
                &ForwardRequest::new(base)
                    .source(input(&o, f, "source"))
                    .locations(locs),
            )
            .unwrap();
        assert_intervened_masked(
            &format!("{f}.ae_idx"),
            &out.intervened,
            &t("logits"),
            &get(&o, &format!("{f}.base_logits")),
            &mask,
        );
    }
}

/// Vanilla at `component` of `layer` on a family's fixture inputs, every example swapping the
/// given (source, base) positions.
fn vanilla(f: &str, layer: usize, component: Component, locs: &Value) -> Tensor {
    let o = family_oracle(f);
    let im = IntervenableModel::new(
        IntervenableConfig::from_components([(layer, component, "VanillaIntervention")]),
        model(f),
    )
    .unwrap();
    let locs = UnitLocations::from_json_str(&locs.to_string()).unwrap();
    im.forward(
        &ForwardRequest::new(input(&o, f, "base"))
            .source(input(&o, f, "source"))
            .locations(locs),
    )
    .unwrap()
    .intervened
}

#[test]
fn olmo2_module_inputs_edit_only_the_module() {
    // pyvene writes attention_input / mlp_input into the residual stream in place, which makes
    // them block_input / block_output swaps; vene edits only what enters the module.
    let man = manifest();
    let o = family_oracle("olmo2");
    let mask = get(&o, "olmo2.base_attention_mask");
    for (comp, same_as) in [
        (Component::AttentionInput, Component::BlockInput),
        (Component::MlpInput, Component::BlockOutput),
    ] {
        let name = format!("olmo2.sweep.vanilla.l0.{comp}");
        let case = &man["cases"][&name];
        let pyvene = get(&o, case["tensors"]["logits"].as_str().unwrap());
        let locs = &case["unit_locations"];
        let inplace_reading = vanilla("olmo2", 0, same_as, locs);
        let d = masked_max_abs_diff(&inplace_reading, &pyvene, &mask);
        assert!(
            d <= 1e-5,
            "{name}: pyvene's reading is vene's {same_as}: {d}"
        );
        let ours = vanilla("olmo2", 0, comp, locs);
        let clone_diff = case["manual_check"]["full_width.clone.max_abs_diff_valid"]
            .as_f64()
            .unwrap() as f32;
        let d = masked_max_abs_diff(&ours, &pyvene, &mask);
        assert!(
            (d - clone_diff).abs() <= 1e-4,
            "{name}: vene differs from pyvene by {d}, the module-only recomputation by {clone_diff}"
        );
    }
}

#[test]
fn full_width_value_output_swap_equals_the_output_swap() {
    // Where heads x head_dim != hidden, pyvene swaps a prefix of attention_value_output; vene
    // swaps the whole vector, which (o_proj being position-wise) is exactly the swap of
    // attention_output.
    let man = manifest();
    for f in ["gemma", "qwen3", "gemma2"] {
        let l = man["families"][f]["layer"].as_u64().unwrap() as usize;
        let case = &man["cases"][format!("{f}.sweep.vanilla.l{l}.attention_value_output")];
        let locs = &case["unit_locations"];
        let o = family_oracle(f);
        let mask = get(&o, &format!("{f}.base_attention_mask"));
        let full = vanilla(f, l, Component::AttentionValueOutput, locs);
        let out = vanilla(f, l, Component::AttentionOutput, locs);
        let d = masked_max_abs_diff(&full, &out, &mask);
        assert!(
            d <= 1e-5,
            "{f}: full-width value-output swap vs output swap: {d}"
        );
    }
}

/// The q/k/v columns of GPT-NeoX's fused projection, per head `[q_h | k_h | v_h]`.
fn neox_projection(f: &str, part: usize) -> (Tensor, Tensor) {
    let w = vene_testutil::load_tensors(format!("{FAMILY_FIXTURES}/tiny-{f}/model.safetensors"));
    let qkv_w = get(&w, "gpt_neox.layers.0.attention.query_key_value.weight");
    let qkv_b = get(&w, "gpt_neox.layers.0.attention.query_key_value.bias");
    let (three_d, d) = qkv_w.dims2().unwrap();
    let heads = 2;
    let hd = three_d / 3 / heads;
    let w = qkv_w
        .reshape((heads, 3, hd, d))
        .unwrap()
        .narrow(1, part, 1)
        .unwrap()
        .reshape((heads * hd, d))
        .unwrap();
    let b = qkv_b
        .reshape((heads, 3, hd))
        .unwrap()
        .narrow(1, part, 1)
        .unwrap()
        .reshape(heads * hd)
        .unwrap();
    (w, b)
}

#[test]
fn gpt_neox_query_key_value_are_the_per_head_columns() {
    // pyvene cannot tap GPT-NeoX's q/k/v; vene gives each its head-major [B, T, H*hd] view of
    // the fused projection. Checked by hand from the attention input.
    for f in ["gpt_neox", "gpt_neox_sequential"] {
        let o = family_oracle(f);
        let base = input(&o, f, "base");
        let m = model(f);
        let collect = |c: Component| {
            let im = IntervenableModel::new(
                IntervenableConfig::from_components([(0, c, "CollectIntervention")]),
                m.clone(),
            )
            .unwrap();
            im.forward(&ForwardRequest::new(base.clone()))
                .unwrap()
                .collected[0]
                .clone()
        };
        let x = collect(Component::AttentionInput);
        for (part, c) in [
            Component::QueryOutput,
            Component::KeyOutput,
            Component::ValueOutput,
        ]
        .into_iter()
        .enumerate()
        {
            let (w, b) = neox_projection(f, part);
            let by_hand = x
                .broadcast_matmul(&w.t().unwrap())
                .unwrap()
                .broadcast_add(&b)
                .unwrap();
            let ours = collect(c);
            assert_eq!(ours.dim(D::Minus1).unwrap(), 16);
            let d = max_abs_diff(&ours, &by_hand);
            assert!(d <= 1e-5, "{f} {c}: {d}");
        }
    }
}

#[test]
fn components_pyvene_cannot_reach_run_in_vene() {
    // Every case pyvene raised on is a component vene runs: collect gives the component's
    // true width, and a swap changes the logits.
    let man = manifest();
    for (name, case) in man["cases"].as_object().unwrap() {
        if case.get("error").is_none() || case["kind"] != "vanilla" {
            continue;
        }
        let f = case["family"].as_str().unwrap();
        let comp = component(case);
        let m = model(f);
        let shape = m.component_shape(comp).unwrap();
        let mut r = RepresentationConfig::new(layer(case, &man), comp);
        if comp.is_head() {
            r = r.unit(Unit::HPos);
        }
        let im = IntervenableModel::new(IntervenableConfig::new(vec![r]), m).unwrap();
        let o = family_oracle(f);
        let locs = UnitLocations::from_json_str(&case["unit_locations"].to_string()).unwrap();
        let base = input(&o, f, "base");
        let mask = base.mask.clone().unwrap();
        let out = im
            .forward(
                &ForwardRequest::new(base)
                    .source(input(&o, f, "source"))
                    .locations(locs),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let base_logits = get(&o, &format!("{f}.base_logits"));
        let d = masked_max_abs_diff(&out.intervened, &base_logits, &mask);
        assert!(d > 1e-3, "{name}: the swap changed nothing ({d})");
        assert!(shape.width > 0 && shape.n_heads > 0, "{name}");
    }
}
