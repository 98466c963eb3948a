//! pyvene's module-path components (`transformer.h[0].mlp.output`,
//! `model.layers[1].self_attn.o_proj.input`) mapped to vene's sites, from each family's names.

use vene_hooks::Component;

use crate::decoder::spec::{QkvLayout, WeightNames};

/// The first segment of a dotted module name (`self_attn.o_proj` → `self_attn`).
fn parent(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// The layer and component a module path names in a model of `model_type`, when it names one
/// of vene's components.
///
/// ```
/// use vene_hooks::Component;
/// use vene_models::module_path_component;
/// assert_eq!(module_path_component("gpt2", "transformer.h[0].mlp.output"), Some((0, Component::MlpOutput)));
/// assert_eq!(
///     module_path_component("gpt_neo", "transformer.h[0].attn.attention.q_proj.output"),
///     Some((0, Component::QueryOutput))
/// );
/// assert_eq!(module_path_component("gpt2", "transformer.h[0].attn.c_attn.output"), None);
/// ```
pub fn module_path_component(model_type: &str, path: &str) -> Option<(usize, Component)> {
    let family = super::FAMILIES
        .iter()
        .find(|f| f.model_type == model_type)?;
    let names: WeightNames = family.names;
    let rest = path.strip_prefix(&format!("{}.{}[", names.prefix, names.layers))?;
    let (layer, rest) = rest.split_once("].")?;
    let layer: usize = layer.parse().ok()?;
    let attn = parent(names.o);
    let mlp = parent(names.down);
    let is = |module: &str, hook: &str| rest == format!("{module}.{hook}");
    let c = if rest == "output" {
        Component::BlockOutput
    } else if rest == "input" {
        Component::BlockInput
    } else if is(mlp, "output") {
        Component::MlpOutput
    } else if is(mlp, "input") {
        Component::MlpInput
    } else if is(attn, "output") {
        Component::AttentionOutput
    } else if is(attn, "input") {
        Component::AttentionInput
    } else if is(names.act, "output") {
        Component::MlpActivation
    } else if is(names.o, "input") {
        Component::AttentionValueOutput
    } else if family.qkv == QkvLayout::Separate && is(names.q, "output") {
        Component::QueryOutput
    } else if family.qkv == QkvLayout::Separate && is(names.k, "output") {
        Component::KeyOutput
    } else if family.qkv == QkvLayout::Separate && is(names.v, "output") {
        Component::ValueOutput
    } else {
        return None;
    };
    Some((layer, c))
}

/// The module path pyvene would name `component` of `layer` by in a model of `model_type`
/// (the inverse of [`module_path_component`]), when the family has a module there: vene's
/// components without a module of their own (`resid_mid`, `attention_weight`, the head
/// components, a fused q/k/v family's `query_output`) have none.
///
/// ```
/// use vene_hooks::Component;
/// use vene_models::{module_path, module_path_component};
/// assert_eq!(module_path("gpt2", 0, Component::MlpOutput).as_deref(), Some("transformer.h[0].mlp.output"));
/// assert_eq!(module_path("llama", 1, Component::AttentionValueOutput).as_deref(),
///            Some("model.layers[1].self_attn.o_proj.input"));
/// let path = module_path("gpt_neox", 2, Component::MlpActivation).unwrap();
/// assert_eq!(module_path_component("gpt_neox", &path), Some((2, Component::MlpActivation)));
/// assert_eq!(module_path("gpt2", 0, Component::QueryOutput), None); // fused c_attn
/// ```
pub fn module_path(model_type: &str, layer: usize, component: Component) -> Option<String> {
    let family = super::FAMILIES
        .iter()
        .find(|f| f.model_type == model_type)?;
    let names: WeightNames = family.names;
    let separate = family.qkv == QkvLayout::Separate;
    let (module, hook) = match component {
        Component::BlockOutput => ("", "output"),
        Component::BlockInput => ("", "input"),
        Component::MlpOutput => (parent(names.down), "output"),
        Component::MlpInput => (parent(names.down), "input"),
        Component::AttentionOutput => (parent(names.o), "output"),
        Component::AttentionInput => (parent(names.o), "input"),
        Component::MlpActivation => (names.act, "output"),
        Component::AttentionValueOutput => (names.o, "input"),
        Component::QueryOutput if separate => (names.q, "output"),
        Component::KeyOutput if separate => (names.k, "output"),
        Component::ValueOutput if separate => (names.v, "output"),
        _ => return None,
    };
    let module = if module.is_empty() {
        String::new()
    } else {
        format!("{module}.")
    };
    Some(format!(
        "{}.{}[{layer}].{module}{hook}",
        names.prefix, names.layers
    ))
}

/// The site a name denotes in a model of `model_type`: one of the family's pyvene module
/// paths ([`module_path_component`]), else a TransformerLens / SAELens hook name, a Hugging
/// Face module name or a dictionary_learning name ([`vene_hooks::site_from_name`]).
///
/// ```
/// use vene_hooks::Component;
/// use vene_models::site_for_model;
/// assert_eq!(site_for_model("gpt2", "transformer.h[3].attn.output"), Some((3, Component::AttentionOutput)));
/// assert_eq!(site_for_model("gpt2", "blocks.3.hook_resid_pre"), Some((3, Component::BlockInput)));
/// assert_eq!(site_for_model("llama", "model.layers.3.mlp"), Some((3, Component::MlpOutput)));
/// assert_eq!(site_for_model("llama", "no.such.site"), None);
/// ```
pub fn site_for_model(model_type: &str, name: &str) -> Option<(usize, Component)> {
    module_path_component(model_type, name).or_else(|| vene_hooks::site_from_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_path_maps_back_to_its_site_in_every_family() {
        let mut mapped = 0;
        for family in super::super::FAMILIES {
            for component in Component::ALL.iter().chain(&Component::EXTENSIONS) {
                let Some(path) = module_path(family.model_type, 5, *component) else {
                    continue;
                };
                assert_eq!(
                    module_path_component(family.model_type, &path),
                    Some((5, *component)),
                    "{}: {path}",
                    family.model_type
                );
                mapped += 1;
            }
            // Every family names at least the residual, attention and MLP sites.
            for c in [
                Component::BlockOutput,
                Component::AttentionOutput,
                Component::MlpOutput,
                Component::MlpActivation,
            ] {
                assert!(
                    module_path(family.model_type, 0, c).is_some(),
                    "{} {c}",
                    family.model_type
                );
            }
        }
        assert!(mapped >= 8 * super::super::FAMILIES.len());
    }
}
