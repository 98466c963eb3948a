//! Pretrained SAEs by release and id, as SAELens's `SAE.from_pretrained(release, sae_id)`.
//!
//! The registry is data: `data/pretrained_saes.json` of this crate (embedded, parsed once),
//! plus, when `VENE_SAE_REGISTRY` names one, a file of the same layout whose releases are
//! added to it (a release of the same name replaces the built-in one). The layout:
//!
//! ```json
//! {
//!   "format_version": 1,
//!   "releases": [
//!     {"name": "gpt2-small-res-jb", "repo_id": "jbloom/GPT2-Small-SAEs-Reformatted",
//!      "model": "openai-community/gpt2", "format": "SaeLens", "hook": "{id}",
//!      "saes": ["blocks.0.hook_resid_pre", {"id": "canonical", "path": "blocks.0.hook_resid_pre"}]}
//!   ]
//! }
//! ```
//!
//! - `format`: a [`SaeFormat`] name (`SaeLens`, `GemmaScope`, `Sparsify`, `DictionaryLearning`,
//!   `Pyvene`, `LlamaScope`); `model`: the hub id of the model the SAEs read.
//! - `saes`: each an id (the path in the repo is the id) or `{"id", "path", "hook", "layer"}`
//!   with every key but `id` optional.
//! - `notes` (optional): what a user should know before applying the SAEs.
//! - `hook`: the TransformerLens hook name of the release's SAEs, `{id}` and `{layer}` filled
//!   in per SAE (the layer: the SAE's `layer`, else `blocks.N` / `layers.N` / `layer_N` in its
//!   id or path). An SAE's own `hook` wins.

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;

use crate::hub::hub_local_path;
use crate::loaders::layer_from_name;
use crate::{load_sae_as, AutoencoderError, HubEnv, HubOptions, LoadedSae, Result, SaeFormat};

/// The built-in registry's text.
const BUILTIN: &str = include_str!("../data/pretrained_saes.json");

/// The environment variable naming an extra registry file (see [`SaeRegistry::from_env`]).
pub const SAE_REGISTRY_ENV: &str = "VENE_SAE_REGISTRY";

/// The largest registry file read (bytes).
const MAX_REGISTRY_BYTES: u64 = 64 << 20;

/// Ids listed in full in an unknown-id error when a release has at most this many.
const LIST_ALL_IDS: usize = 16;

/// One SAE of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PretrainedSae {
    /// Its id in the release (what `--sae-id` takes).
    pub id: String,
    /// Its file or folder in the release's hub repo.
    pub path: String,
    /// The TransformerLens hook name of the activations it reads, when known.
    pub hook_name: Option<String>,
    /// Its layer, when known.
    pub layer: Option<usize>,
}

/// A release: SAEs of one hub repo, in one format, for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaeRelease {
    /// Its name (what `--sae-release` takes).
    pub name: String,
    /// The hub repo holding its SAEs.
    pub repo_id: String,
    /// The hub id of the model its SAEs read.
    pub model: String,
    /// The format of its files.
    pub format: SaeFormat,
    /// The hook name template (`{id}`, `{layer}` placeholders), when the registry gives one.
    pub hook: Option<String>,
    /// What a user should know before applying its SAEs (e.g. activations the SAEs were
    /// trained on that a Hugging Face model does not reproduce exactly).
    pub notes: Option<String>,
    /// Its SAEs, in the registry's order.
    pub saes: Vec<PretrainedSae>,
}

impl SaeRelease {
    /// The SAE `id`, or [`AutoencoderError::UnknownSaeId`] naming the closest ids and the
    /// valid ones.
    ///
    /// ```
    /// use vene_autoencoder::SaeRegistry;
    ///
    /// let release = SaeRegistry::builtin()?.release("gemma-scope-2b-pt-res-canonical")?;
    /// let sae = release.sae("layer_5/width_16k/canonical")?;
    /// assert_eq!(sae.path, "layer_5/width_16k/average_l0_68");
    /// assert_eq!(sae.hook_name.as_deref(), Some("blocks.5.hook_resid_post"));
    /// let e = release.sae("layer_5/width_16k/canonicl").unwrap_err().to_string();
    /// assert!(e.contains("did you mean `layer_5/width_16k/canonical`"), "{e}");
    /// # Ok::<(), vene_autoencoder::AutoencoderError>(())
    /// ```
    pub fn sae(&self, id: &str) -> Result<&PretrainedSae> {
        if let Some(s) = self.saes.iter().find(|s| s.id == id) {
            return Ok(s);
        }
        let ids: Vec<&str> = self.ids().collect();
        let mut valid = if ids.len() <= LIST_ALL_IDS {
            format!("its ids: {}", ids.join(", "))
        } else {
            format!(
                "it has {} ids ({}, ..., {}): list them with `vene sae-releases {}`",
                ids.len(),
                ids[..2].join(", "),
                ids[ids.len() - 1],
                self.name
            )
        };
        if id.ends_with("/canonical") && !self.name.ends_with("-canonical") {
            valid.push_str(&format!(
                "; canonical ids are in the release `{}-canonical`",
                self.name
            ));
        }
        Err(AutoencoderError::UnknownSaeId {
            release: self.name.clone(),
            id: id.to_string(),
            closest: closest(id, ids.iter().copied()),
            valid: valid.into(),
        })
    }

    /// Its SAE ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.saes.iter().map(|s| s.id.as_str())
    }

    /// Where its SAEs read, in words: the hook template with `L` for the layer
    /// (`blocks.L.hook_resid_post`), else the distinct hook names.
    pub fn site(&self) -> String {
        let mut hooks: Vec<String> = Vec::new();
        for s in &self.saes {
            let h = match (&s.hook_name, s.layer) {
                (Some(h), Some(l)) => h.replacen(&format!(".{l}."), ".L.", 1),
                (Some(h), None) => h.clone(),
                (None, _) => "?".into(),
            };
            if !hooks.contains(&h) {
                hooks.push(h);
            }
        }
        hooks.join(", ")
    }
}

/// A registry of pretrained SAE releases.
///
/// ```
/// use vene_autoencoder::{SaeFormat, SaeRegistry};
///
/// let reg = SaeRegistry::builtin()?;
/// let r = reg.release("gpt2-small-res-jb")?;
/// assert_eq!(r.repo_id, "jbloom/GPT2-Small-SAEs-Reformatted");
/// assert_eq!(r.format, SaeFormat::SaeLens);
/// let (_, sae) = reg.resolve("gpt2-small-res-jb", "blocks.8.hook_resid_pre")?;
/// assert_eq!((sae.path.as_str(), sae.layer), ("blocks.8.hook_resid_pre", Some(8)));
///
/// // An extra registry adds releases.
/// let extra = SaeRegistry::from_json(
///     r#"{"format_version": 1, "releases": [{"name": "mine", "repo_id": "me/saes",
///         "model": "openai-community/gpt2", "format": "SaeLens",
///         "hook": "blocks.{layer}.hook_resid_post", "saes": ["layer_3"]}]}"#,
///     "mine.json",
/// )?;
/// let reg = reg.clone().with_extra(extra);
/// let (_, sae) = reg.resolve("mine", "layer_3")?;
/// assert_eq!(sae.hook_name.as_deref(), Some("blocks.3.hook_resid_post"));
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaeRegistry {
    releases: Vec<SaeRelease>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    format_version: u32,
    releases: Vec<RawRelease>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelease {
    name: String,
    repo_id: String,
    model: String,
    format: String,
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    notes: Option<String>,
    saes: Vec<RawSae>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawSae {
    Id(String),
    Full(RawSaeFull),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSaeFull {
    id: String,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    hook: Option<String>,
    #[serde(default)]
    layer: Option<usize>,
}

/// The [`SaeFormat`] a registry names (case, `-` and `_` ignored).
fn parse_format(name: &str) -> Option<SaeFormat> {
    let key: String = name
        .chars()
        .filter(|c| !matches!(c, '-' | '_'))
        .collect::<String>()
        .to_ascii_lowercase();
    Some(match key.as_str() {
        "saelens" => SaeFormat::SaeLens,
        "gemmascope" => SaeFormat::GemmaScope,
        "sparsify" => SaeFormat::Sparsify,
        "dictionarylearning" => SaeFormat::DictionaryLearning,
        "pyvene" => SaeFormat::Pyvene,
        "llamascope" => SaeFormat::LlamaScope,
        _ => return None,
    })
}

/// `template` with `{id}` and `{layer}` filled in; `None` when it needs a layer and there is
/// none. Other placeholders are an error message.
fn fill(
    template: &str,
    id: &str,
    layer: Option<usize>,
) -> std::result::Result<Option<String>, String> {
    let mut out = template.replace("{id}", id);
    if out.contains("{layer}") {
        match layer {
            Some(l) => out = out.replace("{layer}", &l.to_string()),
            None => return Ok(None),
        }
    }
    if out.contains('{') || out.contains('}') {
        return Err(format!(
            "hook template `{template}`: only {{id}} and {{layer}} can be filled in"
        ));
    }
    Ok(Some(out))
}

impl SaeRelease {
    fn from_raw(raw: RawRelease) -> std::result::Result<Self, String> {
        let name = raw.name.trim().to_string();
        if name.is_empty() {
            return Err("a release has an empty name".into());
        }
        let ctx = |m: String| format!("release `{name}`: {m}");
        if raw.repo_id.split('/').filter(|p| !p.is_empty()).count() != 2 {
            return Err(ctx(format!(
                "repo_id `{}` is not a hub repo id `owner/name`",
                raw.repo_id
            )));
        }
        let format = parse_format(&raw.format).ok_or_else(|| {
            ctx(format!(
                "unknown format `{}` (known: SaeLens, GemmaScope, Sparsify, DictionaryLearning, Pyvene, LlamaScope)",
                raw.format
            ))
        })?;
        if raw.saes.is_empty() {
            return Err(ctx("no saes".into()));
        }
        let mut seen = HashSet::new();
        let mut saes = Vec::with_capacity(raw.saes.len());
        for s in raw.saes {
            let full = match s {
                RawSae::Id(id) => RawSaeFull {
                    id,
                    path: None,
                    hook: None,
                    layer: None,
                },
                RawSae::Full(f) => f,
            };
            if full.id.is_empty() {
                return Err(ctx("an SAE has an empty id".into()));
            }
            if !seen.insert(full.id.clone()) {
                return Err(ctx(format!("the SAE id `{}` is listed twice", full.id)));
            }
            let path = full.path.unwrap_or_else(|| full.id.clone());
            let path = path.trim_matches('/').to_string();
            let layer = full
                .layer
                .or_else(|| layer_from_name(&full.id))
                .or_else(|| layer_from_name(&path));
            let hook_name = match (full.hook, &raw.hook) {
                (Some(h), _) => Some(h),
                (None, Some(t)) => fill(t, &full.id, layer).map_err(&ctx)?,
                (None, None) => None,
            };
            let layer = layer.or_else(|| hook_name.as_deref().and_then(layer_from_name));
            saes.push(PretrainedSae {
                id: full.id,
                path,
                hook_name,
                layer,
            });
        }
        Ok(SaeRelease {
            name,
            repo_id: raw.repo_id,
            model: raw.model,
            format,
            hook: raw.hook,
            notes: raw.notes,
            saes,
        })
    }
}

impl SaeRegistry {
    /// The built-in registry (`data/pretrained_saes.json`, parsed on first use).
    pub fn builtin() -> Result<&'static SaeRegistry> {
        static BUILT: OnceLock<std::result::Result<SaeRegistry, String>> = OnceLock::new();
        BUILT
            .get_or_init(|| SaeRegistry::from_json(BUILTIN, "built-in").map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|message| AutoencoderError::Registry {
                origin: "built-in".into(),
                message: message.clone(),
            })
    }

    /// The built-in registry plus the file `$VENE_SAE_REGISTRY` names, when set.
    pub fn from_env() -> Result<SaeRegistry> {
        let extra = std::env::var_os(SAE_REGISTRY_ENV).filter(|v| !v.is_empty());
        Self::with_extra_file(extra.as_deref().map(Path::new))
    }

    /// The built-in registry plus the file `extra`, when given.
    pub fn with_extra_file(extra: Option<&Path>) -> Result<SaeRegistry> {
        let reg = Self::builtin()?.clone();
        Ok(match extra {
            Some(p) => reg.with_extra(Self::from_file(p)?),
            None => reg,
        })
    }

    /// A registry from JSON text in the layout of `data/pretrained_saes.json` (see the module
    /// docs); `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<SaeRegistry> {
        let err = |message: String| AutoencoderError::Registry {
            origin: origin.to_string(),
            message,
        };
        let raw: RawRegistry =
            serde_json::from_str(text).map_err(|e| err(format!("invalid registry JSON: {e}")))?;
        if raw.format_version != 1 {
            return Err(err(format!(
                "format_version {} (this vene reads version 1)",
                raw.format_version
            )));
        }
        let mut names = HashSet::new();
        let mut releases = Vec::with_capacity(raw.releases.len());
        for r in raw.releases {
            let r = SaeRelease::from_raw(r).map_err(err)?;
            if !names.insert(r.name.clone()) {
                return Err(err(format!("the release `{}` is listed twice", r.name)));
            }
            releases.push(r);
        }
        Ok(SaeRegistry { releases })
    }

    /// A registry from a JSON file (see [`SaeRegistry::from_json`]).
    pub fn from_file(path: impl AsRef<Path>) -> Result<SaeRegistry> {
        let path = path.as_ref();
        let len = std::fs::metadata(path)
            .map_err(|e| AutoencoderError::io(path, e))?
            .len();
        if len > MAX_REGISTRY_BYTES {
            return Err(AutoencoderError::Registry {
                origin: path.display().to_string(),
                message: format!("{len} bytes, more than the {MAX_REGISTRY_BYTES} allowed"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(|e| AutoencoderError::io(path, e))?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// This registry with `extra`'s releases added; one of the same name replaces this one's.
    pub fn with_extra(mut self, extra: SaeRegistry) -> SaeRegistry {
        for r in extra.releases {
            match self.releases.iter_mut().find(|o| o.name == r.name) {
                Some(o) => *o = r,
                None => self.releases.push(r),
            }
        }
        self
    }

    /// Its releases, in order.
    pub fn releases(&self) -> &[SaeRelease] {
        &self.releases
    }

    /// The release `name`, or [`AutoencoderError::UnknownRelease`] naming the closest ones.
    pub fn release(&self, name: &str) -> Result<&SaeRelease> {
        self.releases
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| AutoencoderError::UnknownRelease {
                name: name.to_string(),
                closest: closest(name, self.releases.iter().map(|r| r.name.as_str())),
                count: self.releases.len(),
            })
    }

    /// The release `release` and its SAE `id`.
    pub fn resolve(&self, release: &str, id: &str) -> Result<(&SaeRelease, &PretrainedSae)> {
        let r = self.release(release)?;
        Ok((r, r.sae(id)?))
    }

    /// The release and SAE whose files are `path_in_repo` of the hub repo `repo_id`, when the
    /// registry lists them (the first such release; a canonical id and its `average_l0`
    /// folder share the site). What a hub path such as
    /// `google/gemma-scope-2b-pt-mlp/layer_3/width_16k/average_l0_195` can learn from the
    /// registry.
    ///
    /// ```
    /// use vene_autoencoder::SaeRegistry;
    ///
    /// let reg = SaeRegistry::builtin()?;
    /// let (r, sae) = reg
    ///     .find_by_path("google/gemma-scope-2b-pt-mlp", "layer_3/width_16k/average_l0_195/")
    ///     .unwrap();
    /// assert_eq!(r.name, "gemma-scope-2b-pt-mlp");
    /// assert_eq!(sae.hook_name.as_deref(), Some("blocks.3.hook_mlp_out"));
    /// assert!(reg.find_by_path("google/gemma-scope-2b-pt-mlp", "layer_3").is_none());
    /// # Ok::<(), vene_autoencoder::AutoencoderError>(())
    /// ```
    pub fn find_by_path(
        &self,
        repo_id: &str,
        path_in_repo: &str,
    ) -> Option<(&SaeRelease, &PretrainedSae)> {
        let path = path_in_repo.trim_matches('/');
        self.releases
            .iter()
            .filter(|r| r.repo_id == repo_id)
            .find_map(|r| r.saes.iter().find(|s| s.path == path).map(|s| (r, s)))
    }

    /// Loads the SAE `id` of `release` from the hub (cache first; see
    /// [`crate::load_sae_from_hub`] for the cache folder, offline mode and downloads), in the
    /// release's format. When the files do not name the hook point (Gemma Scope's
    /// `params.npz`, older SAELens configs), [`LoadedSae::hook_name`] and
    /// [`LoadedSae::layer`] come from the registry.
    pub fn load(&self, release: &str, id: &str, opts: &HubOptions) -> Result<LoadedSae> {
        let (r, sae) = self.resolve(release, id)?;
        let context = |e: AutoencoderError| match e {
            AutoencoderError::Hub(m) => {
                AutoencoderError::Hub(format!("SAE `{id}` of release `{release}`: {m}"))
            }
            other => other,
        };
        let local =
            hub_local_path(&r.repo_id, &sae.path, opts, &HubEnv::from_env()).map_err(context)?;
        let mut loaded = load_sae_as(&local, r.format, &opts.load)?;
        if loaded.hook_name.is_none() && sae.hook_name.is_some() {
            loaded.hook_name = sae.hook_name.clone();
            loaded.layer = sae.layer.or(loaded.layer);
        }
        if loaded.layer.is_none() {
            loaded.layer = sae.layer;
        }
        Ok(loaded)
    }
}

/// The releases of the built-in registry and of `$VENE_SAE_REGISTRY` (see
/// [`SaeRegistry::from_env`]).
///
/// ```
/// let releases = vene_autoencoder::pretrained_releases()?;
/// let r = releases.iter().find(|r| r.name == "gemma-scope-2b-pt-res").unwrap();
/// assert_eq!(r.model, "google/gemma-2-2b");
/// assert_eq!(r.site(), "hook_embed, blocks.L.hook_resid_post");
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn pretrained_releases() -> Result<Vec<SaeRelease>> {
    Ok(SaeRegistry::from_env()?.releases)
}

/// The release `name` of the built-in registry or of `$VENE_SAE_REGISTRY`.
///
/// ```
/// let r = vene_autoencoder::pretrained_release("llama_scope_lxr_8x")?;
/// let sae = r.sae("l15r_8x")?;
/// assert_eq!(sae.path, "Llama3_1-8B-Base-L15R-8x");
/// assert_eq!(sae.hook_name.as_deref(), Some("blocks.15.hook_resid_post"));
/// let e = vene_autoencoder::pretrained_release("gpt2-small-res").unwrap_err();
/// assert!(e.to_string().contains("did you mean `gpt2-small-res-jb`"), "{e}");
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn pretrained_release(name: &str) -> Result<SaeRelease> {
    let reg = SaeRegistry::from_env()?;
    reg.release(name).cloned()
}

/// Loads the SAE `sae_id` of the release `release` (SAELens's
/// `SAE.from_pretrained(release, sae_id)`), with the default [`HubOptions`]: the hub cache and
/// offline mode from the environment (`HF_HUB_CACHE`, `HF_HOME`, `HF_HUB_OFFLINE`).
///
/// ```no_run
/// let sae = vene_autoencoder::load_sae_pretrained("gpt2-small-res-jb", "blocks.8.hook_resid_pre")?;
/// assert_eq!((sae.d_in, sae.d_sae), (768, 24576));
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn load_sae_pretrained(release: &str, sae_id: &str) -> Result<LoadedSae> {
    load_sae_pretrained_with(release, sae_id, &HubOptions::default())
}

/// [`load_sae_pretrained`] with options (cache folder, revision, offline, device).
///
/// ```no_run
/// use vene_autoencoder::{load_sae_pretrained_with, HubOptions};
///
/// let opts = HubOptions { offline: true, ..HubOptions::default() };
/// let sae = load_sae_pretrained_with("gemma-scope-2b-pt-res-canonical", "layer_20/width_16k/canonical", &opts)?;
/// assert_eq!(sae.hook_name.as_deref(), Some("blocks.20.hook_resid_post"));
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn load_sae_pretrained_with(
    release: &str,
    sae_id: &str,
    opts: &HubOptions,
) -> Result<LoadedSae> {
    SaeRegistry::from_env()?.load(release, sae_id, opts)
}

/// Edit distance between `a` and `b` (characters, case-insensitive).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to three of `candidates` nearest to `query`: first those containing it (or contained in
/// it), then those holding every part of it (split at `-`, `_`, `/`, `.`), then those within a
/// third of its length in edit distance; nearest first in each group.
fn closest<'a>(query: &str, candidates: impl Iterator<Item = &'a str>) -> Vec<String> {
    let q = query.to_lowercase();
    let parts: Vec<&str> = q
        .split(['-', '_', '/', '.'])
        .filter(|p| !p.is_empty())
        .collect();
    let budget = (query.chars().count() / 3).max(2);
    let mut scored: Vec<(u8, usize, &str)> = candidates
        .filter_map(|c| {
            let lc = c.to_lowercase();
            let d = edit_distance(&q, &lc);
            if !q.is_empty() && (lc.contains(&q) || q.contains(&lc)) {
                Some((0, d, c))
            } else if !parts.is_empty() && parts.iter().all(|p| lc.contains(p)) {
                Some((1, d, c))
            } else {
                (d <= budget).then_some((2, d, c))
            }
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, _, c)| c.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_and_closest() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ABC", "abc"), 0);
        let c = [
            "gpt2-small-res-jb",
            "gemma-scope-2b-pt-res",
            "gemma-scope-2b-pt-mlp",
        ];
        assert_eq!(
            closest("gemma-scope-2b-pt-rs", c.into_iter()),
            ["gemma-scope-2b-pt-res", "gemma-scope-2b-pt-mlp"]
        );
        assert_eq!(closest("gpt2", c.into_iter()), ["gpt2-small-res-jb"]);
        assert!(closest("zzz", c.into_iter()).is_empty());
    }

    #[test]
    fn templates_fill_id_and_layer() {
        assert_eq!(
            fill("{id}", "blocks.3.hook_z", None),
            Ok(Some("blocks.3.hook_z".into()))
        );
        assert_eq!(
            fill("blocks.{layer}.hook_mlp_out", "x", Some(4)),
            Ok(Some("blocks.4.hook_mlp_out".into()))
        );
        assert_eq!(fill("blocks.{layer}.hook_mlp_out", "x", None), Ok(None));
        assert!(fill("blocks.{lyr}.x", "x", Some(1))
            .unwrap_err()
            .contains("{lyr}"));
    }

    #[test]
    fn the_builtin_registry_parses_with_a_site_for_every_sae() {
        let reg = SaeRegistry::builtin().unwrap();
        assert!(reg.releases().len() >= 30);
        for r in reg.releases() {
            for s in &r.saes {
                let hook = s
                    .hook_name
                    .as_deref()
                    .unwrap_or_else(|| panic!("{} {}", r.name, s.id));
                // Every SAE but Gemma Scope's embedding ones has a layer that its hook names.
                if hook != "hook_embed" {
                    assert_eq!(s.layer, layer_from_name(hook), "{} {}", r.name, s.id);
                }
            }
        }
    }

    #[test]
    fn registry_errors_name_the_release_and_what_is_wrong() {
        let one = |release: &str| format!(r#"{{"format_version": 1, "releases": [{release}]}}"#);
        for (text, want) in [
            ("{".to_string(), "invalid registry JSON"),
            (
                r#"{"format_version": 2, "releases": []}"#.to_string(),
                "format_version 2",
            ),
            (
                one(
                    r#"{"name": "a", "repo_id": "o/r", "model": "m", "format": "Nope", "saes": ["x"]}"#,
                ),
                "release `a`: unknown format `Nope`",
            ),
            (
                one(
                    r#"{"name": "a", "repo_id": "r", "model": "m", "format": "SaeLens", "saes": ["x"]}"#,
                ),
                "repo_id `r` is not a hub repo id",
            ),
            (
                one(
                    r#"{"name": "a", "repo_id": "o/r", "model": "m", "format": "SaeLens", "saes": ["x", "x"]}"#,
                ),
                "`x` is listed twice",
            ),
            (
                one(
                    r#"{"name": "a", "repo_id": "o/r", "model": "m", "format": "SaeLens", "saes": []}"#,
                ),
                "release `a`: no saes",
            ),
            (
                one(
                    r#"{"name": "a", "repo_id": "o/r", "model": "m", "format": "SaeLens", "saes": [{"id": "x", "pth": "y"}]}"#,
                ),
                "invalid registry JSON",
            ),
            (
                one(
                    r#"{"name": "a", "repo_id": "o/r", "model": "m", "format": "SaeLens", "hook": "{x}", "saes": ["x"]}"#,
                ),
                "hook template `{x}`",
            ),
        ] {
            let e = SaeRegistry::from_json(&text, "extra.json")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("SAE registry extra.json: "), "{e}");
            assert!(e.contains(want), "{want}: {e}");
        }
    }
}
