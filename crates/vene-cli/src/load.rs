//! Loading what the commands need: a model with its tokenizer, an SAE, prompts.

use std::path::Path;
use std::sync::Arc;

use candle_core::Tensor;
use vene::autoencoder::{load_sae, load_sae_from_hub, Autoencoder, HubOptions, LoadedSae};
use vene::hooks::{Component, HookableModel, Site};
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

    /// The readable text of one token (never empty; partial UTF-8 bytes as `\xNN`; see
    /// [`Tokenizer::token_text`]).
    pub fn token(&self, id: u32) -> String {
        self.tokenizer.token_text(id)
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
/// environment), with the hook point the SAE registry gives that repo and path when the files
/// name none (Gemma Scope). Anything else is a plain "no such file or folder" naming `spec`.
pub fn sae(spec: &str) -> Result<LoadedSae> {
    if Path::new(spec).exists() {
        return Ok(load_sae(spec)?);
    }
    match hub_sae_spec(spec) {
        Some((repo_id, path)) => {
            let mut sae = load_sae_from_hub(repo_id, path, &HubOptions::default()).map_err(|e| {
                CliError::invalid(format!(
                    "--sae {spec:?}: no such local file or folder, so it was read as `{path}` of the hub repo {repo_id}: {e}"
                ))
            })?;
            // A path the registry lists (e.g. a Gemma Scope folder): its hook point when the
            // files name none. A broken $VENE_SAE_REGISTRY does not stop a path that loaded.
            if let Ok(reg) = vene::autoencoder::SaeRegistry::from_env() {
                if let Some((_, entry)) = reg.find_by_path(repo_id, path) {
                    crate::sae_args::take_registry_site(&mut sae, entry);
                }
            }
            Ok(sae)
        }
        None => Err(CliError::invalid(format!(
            "--sae {spec:?}: no such file or folder (and not a hub path `org/repo/path-in-repo`)"
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

/// Where an SAE is applied, and a warning when that is not where its files say it was trained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaeSite {
    /// The layer.
    pub layer: usize,
    /// The component.
    pub component: Component,
    /// Set when `--layer`/`--component` chose another site than the SAE's own.
    pub warning: Option<String>,
}

/// The site to apply `sae` at: `--layer` and `--component` when given, else the site its files
/// name (SAELens `hook_name`, sparsify hookpoint, dictionary_learning submodule; read by
/// [`vene::hooks::site_from_name`]), else its layer and `block_output`. A site asked for that
/// differs from the SAE's own comes with a warning.
///
/// ```
/// use vene::hooks::Component;
/// # fn sae(hook: &str) -> vene::autoencoder::LoadedSae {
/// #     let dir = std::env::temp_dir().join(format!("vene-doc-sae-site-{}", std::process::id()));
/// #     let ae = vene::autoencoder::AutoencoderLayer::seeded(4, 8, 0, &candle_core::Device::Cpu).unwrap();
/// #     vene_cli::commands::train_sae::save_saelens(&ae, &dir, hook, 8, "m", None, true).unwrap();
/// #     let s = vene::autoencoder::load_sae(&dir).unwrap();
/// #     std::fs::remove_dir_all(&dir).unwrap();
/// #     s
/// # }
/// // An SAELens SAE of `blocks.8.hook_resid_pre` is applied at block_input of layer 8.
/// let s = sae("blocks.8.hook_resid_pre");
/// let site = vene_cli::load::sae_site(None, None, &s)?;
/// assert_eq!((site.layer, site.component, site.warning), (8, Component::BlockInput, None));
/// // block_output of layer 7 reads the same activations: no warning.
/// let site = vene_cli::load::sae_site(Some(7), Some(Component::BlockOutput), &s)?;
/// assert!(site.warning.is_none());
/// // Another site is used as asked, with a warning.
/// let site = vene_cli::load::sae_site(None, Some(Component::BlockOutput), &s)?;
/// assert_eq!((site.layer, site.component), (8, Component::BlockOutput));
/// assert!(site.warning.unwrap().contains("blocks.8.hook_resid_pre"));
/// # Ok::<(), vene_cli::CliError>(())
/// ```
pub fn sae_site(
    layer: Option<usize>,
    component: Option<Component>,
    sae: &LoadedSae,
) -> Result<SaeSite> {
    let named = sae
        .hook_name
        .as_deref()
        .and_then(vene::hooks::site_from_name);
    let layer = layer
        .or(named.map(|(l, _)| l))
        .or(sae.layer)
        .ok_or_else(|| {
            CliError::invalid("no layer: pass --layer (the SAE's files do not name one)")
        })?;
    let component = component
        .or(named.map(|(_, c)| c))
        .unwrap_or(Component::BlockOutput);
    let warning = match (named, sae.hook_name.as_deref()) {
        (Some(own), Some(hook))
            if Site::new(own.0, own.1).canonical() != Site::new(layer, component).canonical() =>
        {
            Some(format!(
            "warning: the SAE was trained at {hook} ({} of layer {}); applying it at {component} of layer {layer} as asked",
            own.1, own.0
        ))
        }
        _ => None,
    };
    Ok(SaeSite {
        layer,
        component,
        warning,
    })
}
