//! Loading what the commands need: a model with its tokenizer, an SAE, prompts.

use std::path::Path;
use std::sync::Arc;

use candle_core::Tensor;
use vene::autoencoder::{load_sae, load_sae_from_hub, Autoencoder, HubOptions, LoadedSae};
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

/// The SAE as a shared autoencoder, checked against the model's width, on the model's
/// device in `backend.sae_dtype` (the precision its math runs in).
pub fn sae_for(model: &Model, sae: LoadedSae, backend: &Backend) -> Result<Arc<dyn Autoencoder>> {
    if sae.d_in != model.hidden_size() {
        return Err(CliError::invalid(format!(
            "the SAE reads activations of width {}, but the model's residual stream has width {}",
            sae.d_in,
            model.hidden_size()
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
