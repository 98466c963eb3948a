//! Loading folders saved by pyvene: `config.json` with 14-element representation lists and
//! class-name intervention types, and `intkey_<key>.bin` torch pickles.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use serde_json::Value;
use vene_hooks::{Component, Unit};
use vene_models::LanguageModel;

use crate::config::{IntervenableConfig, Mode, RepresentationConfig};
use crate::save::{check_finite, SavedState};
use crate::{IntervenableModel, Result, VeneError};

/// Whether `json` is a pyvene `config.json` (representations stored as lists).
pub(crate) fn is_pyvene_config(json: &Value) -> bool {
    json.get("intervention_types").is_some()
        && json
            .get("representations")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().all(Value::is_array))
}

/// pyvene's class string `"<class 'pyvene.models.interventions.X'>"` (or a bare `X`) to `X`.
pub fn pyvene_type_name(s: &str) -> &str {
    let s = s.trim();
    let s = s
        .strip_prefix("<class '")
        .and_then(|x| x.strip_suffix("'>"))
        .unwrap_or(s);
    s.rsplit('.').next().unwrap_or(s)
}

/// Maps a HuggingFace module path of pyvene's string components
/// (`transformer.h[0].mlp.output`, `model.layers[1].self_attn.o_proj.input`) to a layer and a
/// component, for the model type `model_type` (any supported family, through its module
/// names).
///
/// ```
/// use vene::{module_path_component, hooks::Component};
/// assert_eq!(module_path_component("transformer.h[0].mlp.output", "gpt2")?, (0, Component::MlpOutput));
/// assert_eq!(module_path_component("model.layers[1].self_attn.o_proj.input", "llama")?,
///            (1, Component::AttentionValueOutput));
/// assert_eq!(module_path_component("gpt_neox.layers[0].attention.dense.input", "gpt_neox")?,
///            (0, Component::AttentionValueOutput));
/// assert!(module_path_component("transformer.h[0].attn.c_attn.output", "gpt2").is_err());
/// # Ok::<(), vene::VeneError>(())
/// ```
pub fn module_path_component(path: &str, model_type: &str) -> Result<(usize, Component)> {
    vene_models::module_path_component(model_type, path)
        .ok_or_else(|| VeneError::UnmappedModulePath(path.to_string()))
}

fn cfg_err(path: &Path, msg: String) -> VeneError {
    VeneError::SavedFile {
        path: path.display().to_string(),
        reason: msg,
    }
}

fn opt_usize(v: Option<&Value>) -> Option<usize> {
    v.and_then(Value::as_u64)
        .and_then(|x| usize::try_from(x).ok())
}

/// One pyvene representation list: layer, component, unit, max_number_of_units,
/// low_rank_dimension, intervention_type, intervention, subspace_partition, group_key,
/// intervention_link_key, moe_key, source_representation, hidden_source_representation,
/// latent_dim.
fn parse_repr(
    list: &[Value],
    model_type: &str,
    where_: &Path,
    i: usize,
) -> Result<RepresentationConfig> {
    let err = |m: String| cfg_err(where_, format!("representation {i}: {m}"));
    let layer = opt_usize(list.first()).unwrap_or(0);
    let comp_str = list
        .get(1)
        .and_then(Value::as_str)
        .unwrap_or("block_output");
    let (layer, component) = match comp_str.parse::<Component>() {
        Ok(c) => (layer, c),
        Err(_) if comp_str.contains('.') => vene_models::site_for_model(model_type, comp_str)
            .ok_or_else(|| VeneError::UnmappedModulePath(comp_str.to_string()))?,
        Err(e) => return Err(err(e.to_string())),
    };
    let unit: Unit = list
        .get(2)
        .and_then(Value::as_str)
        .unwrap_or("pos")
        .parse()
        .map_err(|e: vene_hooks::HookError| err(e.to_string()))?;
    let mut r = RepresentationConfig::new(layer, component).unit(unit);
    r.max_number_of_units = opt_usize(list.get(3)).unwrap_or(1);
    r.low_rank_dimension = opt_usize(list.get(4));
    r.subspace_partition = match list.get(7) {
        Some(v) if !v.is_null() => Some(
            serde_json::from_value(v.clone())
                .map_err(|e| err(format!("subspace_partition: {e}")))?,
        ),
        _ => None,
    };
    r.group_key = list.get(8).and_then(Value::as_i64);
    r.intervention_link_key = list.get(9).and_then(Value::as_i64);
    r.latent_dim = opt_usize(list.get(13));
    Ok(r)
}

/// Loads a pyvene-saved folder onto `model`.
pub(crate) fn load_pyvene<M: LanguageModel>(
    dir: &Path,
    json: &Value,
    model: M,
) -> Result<IntervenableModel<M>> {
    let cfg_path = dir.join("config.json");
    let model_type = vene_hooks::HookableModel::model_type(&model).to_string();
    let reprs = json
        .get("representations")
        .and_then(Value::as_array)
        .ok_or_else(|| cfg_err(&cfg_path, "no representations".into()))?;
    let types = json
        .get("intervention_types")
        .and_then(Value::as_array)
        .ok_or_else(|| cfg_err(&cfg_path, "no intervention_types".into()))?;
    if types.len() != reprs.len() {
        return Err(cfg_err(
            &cfg_path,
            format!(
                "{} intervention types for {} representations",
                types.len(),
                reprs.len()
            ),
        ));
    }
    let dims = json
        .get("intervention_dimensions")
        .and_then(Value::as_array);
    let keys: Option<Vec<String>> = json
        .get("sorted_keys")
        .and_then(|k| serde_json::from_value(k.clone()).ok());
    let mut out = Vec::with_capacity(reprs.len());
    for (i, (r, t)) in reprs.iter().zip(types).enumerate() {
        let list = r.as_array().map(Vec::as_slice).unwrap_or(&[]);
        let mut repr = parse_repr(list, &model_type, &cfg_path, i)?;
        let t = t
            .as_str()
            .ok_or_else(|| cfg_err(&cfg_path, format!("intervention type {i} is not a string")))?;
        repr.intervention_type = Some(pyvene_type_name(t).to_string());
        // a list: those dims; an int k: the first k (pyvene's interchange_dim buffer)
        if let Some(d) = dims.and_then(|d| d.get(i)).filter(|d| !d.is_null()) {
            repr.hyperparams.insert("interchange_dim".into(), d.clone());
        }
        out.push(repr);
    }
    let mode = match json.get("mode").and_then(Value::as_str) {
        Some("serial") => Mode::Serial,
        _ => Mode::Parallel,
    };
    if let Some(k) = &keys {
        if k.len() != out.len() {
            return Err(cfg_err(
                &cfg_path,
                format!("{} sorted keys for {} representations", k.len(), out.len()),
            ));
        }
    }
    let constant_sources = json
        .get("intervention_constant_sources")
        .and_then(Value::as_array);
    let mut states: HashMap<String, SavedState> = HashMap::new();
    for (i, key) in keys.iter().flatten().enumerate() {
        let file = dir.join(format!("intkey_{key}.bin"));
        let fname = file.display().to_string();
        let type_name = out[i].type_name().to_string();
        let constant = constant_sources
            .and_then(|c| c.get(i))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let sourceless = matches!(
            vene_interventions::parse_type_name(&type_name),
            Ok("ZeroIntervention"
                | "CollectIntervention"
                | "SkipIntervention"
                | "NoiseIntervention")
        );
        // pyvene's load reads the file of every trainable intervention and of every one
        // with a constant source (and fails without it)
        let required =
            vene_interventions::needs_saved_state(&type_name) || (constant && !sourceless);
        if !file.is_file() {
            if required {
                return Err(VeneError::MissingStateFile {
                    path: fname,
                    key: key.clone(),
                    type_name,
                });
            }
            continue;
        }
        let device = vene_models::LanguageModel::device(&model);
        let tensors = vene_autoencoder::read_torch_pickle(&file, device).map_err(|e| {
            VeneError::SavedFile {
                path: fname.clone(),
                reason: e.to_string(),
            }
        })?;
        let mut tensors = weight_of_parametrization(tensors).map_err(|e| VeneError::BadState {
            path: fname.clone(),
            key: key.clone(),
            source: Box::new(e),
        })?;
        if sourceless {
            // pyvene's load reads `source_representation` for these classes, which ignore it
            tensors.retain(|(k, _)| k != "source_representation");
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        check_finite(&fname, key, &tensors)?;
        states.insert(
            key.clone(),
            SavedState {
                path: fname,
                tensors,
            },
        );
    }
    for (i, r) in out.iter_mut().enumerate() {
        let state = keys
            .as_ref()
            .and_then(|k| k.get(i))
            .and_then(|k| states.get_mut(k));
        if let Some(state) = state {
            // the constant source, held by the model as a config's constant source is (as
            // vene's own load does), not given to the intervention a second time
            let pos = state
                .tensors
                .iter()
                .position(|(k, _)| k == "source_representation");
            if let Some(pos) = pos {
                r.source_representation = Some(state.tensors.remove(pos).1);
            }
        }
    }
    let cfg = IntervenableConfig::new(out).mode(mode);
    IntervenableModel::build(cfg, model, &states, keys)
}

/// A pyvene state dict with its orthogonal parametrization
/// (`rotate_layer.parametrizations.weight.{original, 0.base}`, what pyvene's rotated-space
/// classes save) replaced by the weight it stands for (`rotate_layer.weight`).
fn weight_of_parametrization(
    mut tensors: HashMap<String, Tensor>,
) -> Result<Vec<(String, Tensor)>> {
    use crate::torch_orthogonal::{parametrized_weight, BASE, ORIGINAL};
    if let Some(original) = tensors.remove(ORIGINAL) {
        let base = tensors.remove(BASE);
        let device = original.device().clone();
        let w = parametrized_weight(&original, base.as_ref())?.to_device(&device)?;
        tensors.insert("rotate_layer.weight".into(), w);
    }
    Ok(tensors.into_iter().collect())
}
