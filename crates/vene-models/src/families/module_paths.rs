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
