//! Loading SAEs from the Hugging Face hub (hf-hub's sync API), cache first.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::{load_sae_with, AutoencoderError, LoadOptions, LoadedSae, Result};

/// How to work without the network, appended to every hub failure.
const OFFLINE_HINT: &str = "to work offline, pass a local SAE folder or file, put the SAE in the hub cache ($HF_HOME/hub or ~/.cache/huggingface/hub), or set HF_HUB_OFFLINE=1 (HubOptions::offline) to use only that cache";

/// Whether `HF_HUB_OFFLINE` asks for the cache only.
fn env_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// Where to look on the hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The hub cache (default: hf-hub's, `$HF_HOME/hub`).
    pub cache_dir: Option<PathBuf>,
    /// The revision (default `main`).
    pub revision: String,
    /// Only look in the cache, never the network (also when `HF_HUB_OFFLINE=1` is set).
    pub offline: bool,
    /// How to load what was found.
    pub load: LoadOptions,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            cache_dir: None,
            revision: "main".into(),
            offline: false,
            load: LoadOptions::default(),
        }
    }
}

/// The snapshot path of `path_in_repo` in the local cache, if its revision is cached and the
/// path exists (file or folder). Layout: `<cache>/models--org--name/refs/<revision>` holds a
/// commit sha, files are under `snapshots/<sha>/`.
pub fn cached_path(
    cache_dir: &Path,
    repo_id: &str,
    revision: &str,
    path_in_repo: &str,
) -> Option<PathBuf> {
    let repo = Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.to_string());
    let root = cache_dir.join(repo.folder_name());
    let sha = std::fs::read_to_string(root.join("refs").join(revision)).ok()?;
    let mut p = root.join("snapshots").join(sha.trim());
    if !path_in_repo.is_empty() {
        p.push(path_in_repo);
    }
    p.exists().then_some(p)
}

/// Loads the SAE at `path_in_repo` (a folder such as `blocks.8.hook_resid_pre` or
/// `layer_20/width_16k/average_l0_71`, or a single weights file) of the model repo `repo_id`.
///
/// The local cache is used when it holds the path; otherwise (unless `offline`) every repo
/// file under the path is downloaded through hf-hub and then loaded with
/// [`crate::load_sae_with`].
pub fn load_sae_from_hub(
    repo_id: &str,
    path_in_repo: &str,
    opts: &HubOptions,
) -> Result<LoadedSae> {
    let cache_dir = opts
        .cache_dir
        .clone()
        .unwrap_or_else(|| Cache::from_env().path().clone());
    let path_in_repo = path_in_repo.trim_matches('/');
    if let Some(p) = cached_path(&cache_dir, repo_id, &opts.revision, path_in_repo) {
        return load_sae_with(p, &opts.load);
    }
    if opts.offline || env_offline() {
        return Err(AutoencoderError::Hub(format!(
            "`{path_in_repo}` of `{repo_id}` (revision {}) is not in the cache {}",
            opts.revision,
            cache_dir.display()
        )));
    }
    let api = ApiBuilder::new()
        .with_cache_dir(cache_dir.clone())
        .with_progress(false)
        .build()
        .map_err(|e| {
            AutoencoderError::Hub(format!("cannot start the hub client: {e}; {OFFLINE_HINT}"))
        })?;
    let repo = api.repo(Repo::with_revision(
        repo_id.to_string(),
        RepoType::Model,
        opts.revision.clone(),
    ));
    let info = repo
        .info()
        .map_err(|e| {
            AutoencoderError::Hub(format!(
                "`{path_in_repo}` of `{repo_id}` is not in the cache {}, and the Hugging Face hub could not be reached or refused ({e}); {OFFLINE_HINT}",
                cache_dir.display()
            ))
        })?;
    let prefix = format!("{path_in_repo}/");
    let wanted: Vec<&str> = info
        .siblings
        .iter()
        .map(|s| s.rfilename.as_str())
        .filter(|f| path_in_repo.is_empty() || *f == path_in_repo || f.starts_with(&prefix))
        .collect();
    if wanted.is_empty() {
        return Err(AutoencoderError::Hub(format!(
            "`{path_in_repo}` is not in `{repo_id}`"
        )));
    }
    let mut last = None;
    for f in wanted {
        last = Some(repo.get(f).map_err(|e| {
            AutoencoderError::Hub(format!(
                "could not download {repo_id}/{f} from the Hugging Face hub ({e}); {OFFLINE_HINT}"
            ))
        })?);
    }
    // The files now sit in the snapshot; load the path (file or folder) from there.
    match cached_path(&cache_dir, repo_id, &opts.revision, path_in_repo) {
        Some(p) => load_sae_with(p, &opts.load),
        None => match last {
            Some(p) if !path_in_repo.is_empty() => load_sae_with(p, &opts.load),
            _ => Err(AutoencoderError::Hub(format!(
                "downloaded `{path_in_repo}` of `{repo_id}` but cannot find it in the cache"
            ))),
        },
    }
}
