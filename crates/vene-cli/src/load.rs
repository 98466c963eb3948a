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
    /// Whether prompts start with the BOS token: `None` as the tokenizer does (see
    /// [`Tokenizer::encode_bos`] and [`crate::bos::BosArgs`]).
    pub prepend_bos: Option<bool>,
}

impl LoadedModel {
    /// The same model, tokenizing prompts with the BOS token as `prepend_bos` asks; asking
    /// for one from a model that has none is an error now, not at the first prompt.
    pub fn with_prepend_bos(mut self, prepend_bos: Option<bool>) -> Result<Self> {
        if prepend_bos == Some(true) {
            self.tokenizer.bos_token_id().map_err(|e| {
                CliError::invalid(format!("--prepend-bos (or the SAE's prepend_bos): {e}"))
            })?;
        }
        self.prepend_bos = prepend_bos;
        Ok(self)
    }

    /// Token ids of `text`, `[1, T]` (with the BOS token as [`LoadedModel::prepend_bos`]
    /// says), with a clear error for an empty prompt.
    pub fn encode(&self, text: &str) -> Result<(Vec<u32>, Tensor)> {
        let ids = self.tokenizer.encode_bos(text, self.prepend_bos)?;
        if ids.is_empty() {
            return Err(CliError::invalid(format!(
                "the prompt {text:?} has no tokens"
            )));
        }
        let t = Tensor::new(ids.as_slice(), self.model.device())?.unsqueeze(0)?;
        Ok((ids, t))
    }

    /// The text of one token.
    pub fn token(&self, id: u32) -> String {
        self.tokenizer
            .decode(&[id])
            .unwrap_or_else(|_| format!("<{id}>"))
    }
}

/// Loads the model at `dir_or_repo` (a local folder, else a hub repo id `owner/name`: any
/// other path is a "no such folder" error, never a hub request) with its tokenizer, on
/// `backend`'s device in its dtype. Prompts are tokenized as the tokenizer does until
/// [`LoadedModel::with_prepend_bos`] says otherwise.
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
        prepend_bos: None,
    })
}

/// `org/repo/path-in-repo` split into the repo id and the path, when `spec` has that shape
/// (`org` and `repo` made of letters, digits, `-`, `_`, `.`, not starting with `.`; a path
/// starting with `/` or `.` is never a hub path).
///
/// ```
/// use vene_cli::load::hub_sae_spec;
/// assert_eq!(
///     hub_sae_spec("jbloom/GPT2-Small-SAEs-Reformatted/blocks.8.hook_resid_pre"),
///     Some(("jbloom/GPT2-Small-SAEs-Reformatted", "blocks.8.hook_resid_pre"))
/// );
/// assert_eq!(hub_sae_spec("./saes/layer8/sae"), None);
/// assert_eq!(hub_sae_spec("/abs/saes/x"), None);
/// assert_eq!(hub_sae_spec("org/repo"), None);
/// ```
pub fn hub_sae_spec(spec: &str) -> Option<(&str, &str)> {
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let (org, rest) = spec.split_once('/')?;
    let (repo, path) = rest.split_once('/')?;
    let path = path.trim_matches('/');
    (part_ok(org) && part_ok(repo) && !path.is_empty() && !path.contains('\\'))
        .then(|| (&spec[..org.len() + 1 + repo.len()], path))
}

/// Loads an SAE from a local folder or file; else, when `spec` is shaped
/// `org/repo/path-in-repo` ([`hub_sae_spec`]), from the hub (cache and offline mode from the
/// environment). Anything else is a plain "no such file or folder" naming `spec`.
pub fn sae(spec: &str) -> Result<LoadedSae> {
    if Path::new(spec).exists() {
        return Ok(load_sae(spec)?);
    }
    match hub_sae_spec(spec) {
        Some((repo_id, path)) => load_sae_from_hub(repo_id, path, &HubOptions::default())
            .map_err(|e| {
                CliError::invalid(format!(
                    "--sae {spec:?}: no such local file or folder, so it was read as `{path}` of the hub repo {repo_id}: {e}"
                ))
            }),
        None => Err(CliError::invalid(format!(
            "--sae {spec:?}: no such file or folder (and not a hub path `org/repo/path-in-repo`)"
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
