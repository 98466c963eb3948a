//! Sites by the names other libraries give them: TransformerLens / SAELens hook names, the
//! Hugging Face module paths sparsify hooks, and dictionary_learning's submodule names.
//!
//! | vene component | TransformerLens / SAELens | HF module path (sparsify) | dictionary_learning |
//! |---|---|---|---|
//! | `block_input` | `blocks.L.hook_resid_pre` | | `embed` (layer 0) |
//! | `block_output` | `blocks.L.hook_resid_post` | `layers.L`, `h.L` | `resid_L` |
//! | `attention_input` | `blocks.L.ln1.hook_normalized` | | |
//! | `attention_output` | `blocks.L.hook_attn_out` | `layers.L.self_attn`, `.attn`, `.attention` | `attn_L` |
//! | `attention_value_output` | `blocks.L.attn.hook_z` | | |
//! | `query_output` / `key_output` / `value_output` | `blocks.L.attn.hook_q` / `hook_k` / `hook_v` | | |
//! | `attention_weight` | `blocks.L.attn.hook_pattern` | | |
//! | `mlp_input` | `blocks.L.ln2.hook_normalized` | | |
//! | `mlp_activation` | `blocks.L.mlp.hook_post` | `layers.L.mlp.act_fn`, `.mlp.act` | |
//! | `mlp_output` | `blocks.L.hook_mlp_out` | `layers.L.mlp` | `mlp_L` |
//! | `resid_mid` (vene's) | `blocks.L.hook_resid_mid` | | |
//!
//! Module paths may carry the model's prefix (`model.layers.L`, `transformer.h.L`,
//! `gpt_neox.layers.L`).

use crate::Component;

/// The `(layer, component)` a hook name or module path names, when it names one vene has.
///
/// ```
/// use vene_hooks::{site_from_name, Component};
/// assert_eq!(site_from_name("blocks.8.hook_resid_pre"), Some((8, Component::BlockInput)));
/// assert_eq!(site_from_name("model.layers.6.mlp"), Some((6, Component::MlpOutput)));
/// assert_eq!(site_from_name("resid_3"), Some((3, Component::BlockOutput)));
/// assert_eq!(site_from_name("blocks.8.hook_resid_mid"), Some((8, Component::ResidMid)));
/// ```
pub fn site_from_name(name: &str) -> Option<(usize, Component)> {
    let name = name.trim();
    if name == "embed" {
        return Some((0, Component::BlockInput));
    }
    for (prefix, component) in [
        ("resid_", Component::BlockOutput),
        ("attn_", Component::AttentionOutput),
        ("mlp_", Component::MlpOutput),
    ] {
        if let Some(layer) = name.strip_prefix(prefix).and_then(|l| l.parse().ok()) {
            return Some((layer, component));
        }
    }
    let parts: Vec<&str> = name.split('.').collect();
    let at = parts
        .iter()
        .position(|p| matches!(*p, "blocks" | "layers" | "h" | "layer"))?;
    let layer: usize = parts.get(at + 1)?.parse().ok()?;
    let rest = parts.get(at + 2..).unwrap_or(&[]).join(".");
    let component = if parts[at] == "blocks" {
        transformer_lens_component(&rest)?
    } else {
        module_component(&rest)?
    };
    Some((layer, component))
}

/// The component of a TransformerLens hook name after `blocks.L.`.
fn transformer_lens_component(hook: &str) -> Option<Component> {
    Some(match hook {
        "hook_resid_pre" => Component::BlockInput,
        "hook_resid_post" => Component::BlockOutput,
        "hook_resid_mid" => Component::ResidMid,
        "hook_attn_out" => Component::AttentionOutput,
        "hook_mlp_out" => Component::MlpOutput,
        "ln1.hook_normalized" => Component::AttentionInput,
        "ln2.hook_normalized" | "hook_mlp_in" => Component::MlpInput,
        "attn.hook_z" => Component::AttentionValueOutput,
        "attn.hook_q" => Component::QueryOutput,
        "attn.hook_k" => Component::KeyOutput,
        "attn.hook_v" => Component::ValueOutput,
        "attn.hook_pattern" => Component::AttentionWeight,
        "mlp.hook_post" => Component::MlpActivation,
        _ => return None,
    })
}

/// The component of a Hugging Face module path after `layers.L.` (the module's output).
fn module_component(path: &str) -> Option<Component> {
    Some(match path {
        "" => Component::BlockOutput,
        "mlp" => Component::MlpOutput,
        "self_attn" | "attn" | "attention" => Component::AttentionOutput,
        "mlp.act_fn" | "mlp.act" => Component::MlpActivation,
        _ => return None,
    })
}

/// The TransformerLens / SAELens hook name of `component` at `layer`, when it has one.
///
/// ```
/// use vene_hooks::{site_from_name, transformer_lens_name, Component};
/// assert_eq!(transformer_lens_name(8, Component::BlockInput).as_deref(), Some("blocks.8.hook_resid_pre"));
/// assert_eq!(transformer_lens_name(2, Component::MlpActivation).as_deref(), Some("blocks.2.mlp.hook_post"));
/// // Round trip.
/// let name = transformer_lens_name(3, Component::AttentionValueOutput).unwrap();
/// assert_eq!(site_from_name(&name), Some((3, Component::AttentionValueOutput)));
/// // One head has no hook of its own in TransformerLens.
/// assert_eq!(transformer_lens_name(3, Component::HeadQueryOutput), None);
/// ```
pub fn transformer_lens_name(layer: usize, component: Component) -> Option<String> {
    let hook = match component {
        Component::BlockInput => "hook_resid_pre",
        Component::BlockOutput => "hook_resid_post",
        Component::AttentionInput => "ln1.hook_normalized",
        Component::AttentionOutput => "hook_attn_out",
        Component::AttentionValueOutput => "attn.hook_z",
        Component::QueryOutput => "attn.hook_q",
        Component::KeyOutput => "attn.hook_k",
        Component::ValueOutput => "attn.hook_v",
        Component::AttentionWeight => "attn.hook_pattern",
        Component::MlpInput => "ln2.hook_normalized",
        Component::MlpActivation => "mlp.hook_post",
        Component::MlpOutput => "hook_mlp_out",
        Component::ResidMid => "hook_resid_mid",
        Component::HeadAttentionValueOutput
        | Component::HeadQueryOutput
        | Component::HeadKeyOutput
        | Component::HeadValueOutput => return None,
    };
    Some(format!("blocks.{layer}.{hook}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transformer_lens_name_round_trips() {
        for c in Component::ALL.into_iter().chain(Component::EXTENSIONS) {
            if let Some(name) = transformer_lens_name(5, c) {
                assert_eq!(site_from_name(&name), Some((5, c)), "{name}");
            }
        }
    }

    #[test]
    fn module_paths_and_dictionary_learning_names() {
        let cases = [
            ("layers.6", Some((6, Component::BlockOutput))),
            (
                "model.layers.6.self_attn",
                Some((6, Component::AttentionOutput)),
            ),
            ("transformer.h.11.mlp", Some((11, Component::MlpOutput))),
            (
                "gpt_neox.layers.2.attention",
                Some((2, Component::AttentionOutput)),
            ),
            (
                "model.layers.0.mlp.act_fn",
                Some((0, Component::MlpActivation)),
            ),
            ("embed", Some((0, Component::BlockInput))),
            ("attn_4", Some((4, Component::AttentionOutput))),
            ("mlp_5", Some((5, Component::MlpOutput))),
            ("blocks.8.hook_resid_mid", Some((8, Component::ResidMid))),
            ("blocks.8.hook_resid_middle", None),
            ("layers.x", None),
            ("model.layers.3.input_layernorm", None),
            ("resid_", None),
            ("", None),
        ];
        for (name, want) in cases {
            assert_eq!(site_from_name(name), want, "{name}");
        }
    }
}
