//! Loading what the commands need: a model with its tokenizer, an SAE, prompts.

use std::path::Path;
use std::sync::Arc;

use candle_core::Tensor;
use vene::autoencoder::{load_sae, load_sae_from_hub, Autoencoder, HubOptions, LoadedSae};
use vene::hooks::{Component, HookableModel};
use vene::models::{load_pretrained, LanguageModel, Model, Tokenizer};

use crate::backend::Backend;
use crate::{CliError, Result};

/// A model and the tokenizer of its folder.
#[derive(Debug)]
pub struct LoadedModel {
    /// The model, on the device and in the dtype it was loaded with.
    pub model: Model,
    /// Its tokenizer (`tokenizer.json` of the folder).
    pub tokenizer: Tokenizer,
}

impl LoadedModel {
    /// Token ids of `text`, `[1, T]`, with a clear error for an empty prompt.
    pub fn encode(&self, text: &str) -> Result<(Vec<u32>, Tensor)> {
        let ids = self.tokenizer.encode(text)?;
        if ids.is_empty() {
            return Err(CliError::invalid(format!(
                "the prompt {text:?} has no tokens"
            )));
        }
        let t = Tensor::new(ids.as_slice(), self.model.device())?.unsqueeze(0)?;
        Ok((ids, t))
    }

    /// The readable text of one token (never empty; partial UTF-8 bytes as `\xNN`; see
    /// [`Tokenizer::token_text`]).
    pub fn token(&self, id: u32) -> String {
        self.tokenizer.token_text(id)
    }
}

/// Loads the model at `dir_or_repo` (a local folder, else a hub repo id) with its tokenizer,
/// on `backend`'s device in its dtype.
pub fn model(dir_or_repo: &str, backend: &Backend) -> Result<LoadedModel> {
    let p = load_pretrained(dir_or_repo, backend.dtype, &backend.device)?;
    let tokenizer = p.tokenizer.ok_or_else(|| {
        CliError::invalid(format!(
            "the model folder {} has no tokenizer.json",
            p.dir.display()
        ))
    })?;
    Ok(LoadedModel {
        model: p.model,
        tokenizer,
    })
}

/// Loads an SAE from a local folder or file, else from the hub as `org/repo/path/in/repo`.
pub fn sae(spec: &str) -> Result<LoadedSae> {
    if Path::new(spec).exists() {
        return Ok(load_sae(spec)?);
    }
    let parts: Vec<&str> = spec.splitn(3, '/').collect();
    match parts.as_slice() {
        [org, repo, path] if !org.is_empty() && !repo.is_empty() && !path.is_empty() => Ok(
            load_sae_from_hub(&format!("{org}/{repo}"), path, &HubOptions::default())?,
        ),
        _ => Err(CliError::invalid(format!(
            "--sae {spec:?}: no such file or folder, and not a hub path `org/repo/path-in-repo`"
        ))),
    }
}

/// The width of one activation vector of `component` in `model`: the hidden size for the
/// residual stream and the attention/MLP inputs and outputs, the intermediate size for
/// `mlp_activation`, the width of one head for head components (`head_*`), all heads together
/// for `query_output` / `key_output` / `value_output` / `attention_value_output`.
///
/// ```
/// use candle_core::{DType, Device};
/// use vene::hooks::Component;
/// use vene::models::Model;
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene/tiny-gpt2");
/// let model = Model::from_dir(dir, DType::F32, &Device::Cpu)?;
/// let width = |c| vene_cli::load::component_width(&model, c).unwrap();
/// assert_eq!(width(Component::BlockOutput), 16);
/// assert_eq!(width(Component::MlpActivation), 64);
/// assert_eq!(width(Component::HeadQueryOutput), 8);
/// assert!(vene_cli::load::component_width(&model, Component::AttentionWeight).is_err());
/// # Ok::<(), vene_cli::CliError>(())
/// ```
pub fn component_width(model: &Model, component: Component) -> Result<usize> {
    if component == Component::AttentionWeight {
        return Err(CliError::invalid(
            "attention_weight holds attention probabilities, not activation vectors: choose \
             another --component",
        ));
    }
    let shape = HookableModel::component_shape(model, component)?;
    Ok(if component.is_head() {
        shape.head_dim()
    } else {
        shape.width
    })
}

/// The SAE as a shared autoencoder, checked against the width of `component` in the model
/// (see [`component_width`]), on the model's device in `backend.sae_dtype` (the precision its
/// math runs in).
pub fn sae_for(
    model: &Model,
    sae: LoadedSae,
    component: Component,
    backend: &Backend,
) -> Result<Arc<dyn Autoencoder>> {
    let width = component_width(model, component)?;
    if sae.d_in != width {
        // Name a component of the SAE's width, when the model has one.
        let hint = [
            Component::BlockOutput,
            Component::MlpActivation,
            Component::HeadAttentionValueOutput,
        ]
        .into_iter()
        .find(|c| component_width(model, *c).ok() == Some(sae.d_in))
        .map(|c| format!(" (the width of {c}: try --component {c})"))
        .unwrap_or_default();
        return Err(CliError::invalid(format!(
            "the SAE reads activations of width {}, but {component} of the model has width \
             {width}{hint}",
            sae.d_in
        )));
    }
    Ok(Arc::from(
        sae.autoencoder.to(model.device(), backend.sae_dtype)?,
    ))
}

/// The layer to use: `--layer` when given, else the SAE's own layer when its files name one.
pub fn layer_of(layer: Option<usize>, sae: Option<&LoadedSae>) -> Result<usize> {
    layer.or_else(|| sae.and_then(|s| s.layer)).ok_or_else(|| {
        CliError::invalid("no layer: pass --layer (the SAE's files do not name one)")
    })
}
