//! Resolving a hub repo to a local snapshot folder: the cache first, then downloads.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::{ModelError, Result};

/// How to work without the network, appended to every hub failure.
pub(crate) const OFFLINE_HINT: &str = "to work offline, pass a local model folder, put the model in the hub cache ($HF_HOME/hub or ~/.cache/huggingface/hub), or set HF_HUB_OFFLINE=1 to use only that cache";

/// Whether `HF_HUB_OFFLINE` asks for the cache only.
fn hub_offline() -> bool {
    std::env::var("HF_HUB_OFFLINE")
        .map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
        .unwrap_or(false)
}

/// Whether `s` is shaped like a hub repo id, `owner/name` (letters, digits, `-`, `_`, `.`;
/// neither part empty nor starting with `.`).
pub(crate) fn is_repo_id(s: &str) -> bool {
    let part_ok = |p: &str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.len() <= 96
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    match s.split_once('/') {
        Some((owner, name)) => part_ok(owner) && part_ok(name),
        None => false,
    }
}

/// The hub cache folder: `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
fn default_cache_dir() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("HF_HOME") {
        return Ok(PathBuf::from(home).join("hub"));
    }
    std::env::var_os("HOME")
        .map(|h| {
            PathBuf::from(h)
                .join(".cache")
                .join("huggingface")
                .join("hub")
        })
        .ok_or_else(|| ModelError::Hub("no HF_HOME or HOME to find the hub cache".to_string()))
}

/// One repo at one revision, resolving files through the local cache and downloading the
/// ones it lacks.
struct HubRepo {
    cache: Cache,
    repo: Repo,
    revision: String,
    repo_id: String,
    api: Option<hf_hub::api::sync::ApiRepo>,
}

impl HubRepo {
    fn new(repo_id: &str, revision: Option<&str>, cache_dir: PathBuf) -> Self {
        let revision = revision.unwrap_or("main").to_string();
        Self {
            cache: Cache::new(cache_dir),
            repo: Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.clone()),
            revision,
            repo_id: repo_id.to_string(),
            api: None,
        }
    }

    /// The cached copy of `file`: through `refs/<revision>`, or `snapshots/<revision>/` when
    /// the revision is a commit hash.
    fn cached(&self, file: &str) -> Option<PathBuf> {
        let cache_repo = self.cache.repo(self.repo.clone());
        if let Some(p) = cache_repo.get(file) {
            return Some(p);
        }
        let p = cache_repo.pointer_path(&self.revision).join(file);
        p.is_file().then_some(p)
    }

    fn get(&mut self, file: &str) -> Result<PathBuf> {
        if let Some(p) = self.cached(file) {
            return Ok(p);
        }
        if hub_offline() {
            return Err(ModelError::Hub(format!(
                "{}@{}: {file} is not in the hub cache {} and HF_HUB_OFFLINE is set; pass a local model folder or fill the cache",
                self.repo_id,
                self.revision,
                self.cache.path().display()
            )));
        }
        if self.api.is_none() {
            let mut builder = ApiBuilder::from_cache(self.cache.clone()).with_progress(false);
            if let Ok(endpoint) = std::env::var("HF_ENDPOINT") {
                builder = builder.with_endpoint(endpoint);
            }
            let api = builder.build().map_err(|e| {
                ModelError::Hub(format!("cannot start the hub client: {e}; {OFFLINE_HINT}"))
            })?;
            self.api = Some(api.repo(self.repo.clone()));
        }
        match &self.api {
            Some(api) => api.get(file).map_err(|e| {
                ModelError::Hub(format!(
                    "could not get {file} of {}@{} from the Hugging Face hub (not in the cache {}, and the hub could not be reached or refused: {e}); {OFFLINE_HINT}",
                    self.repo_id,
                    self.revision,
                    self.cache.path().display()
                ))
            }),
            None => Err(ModelError::Hub("hub client unavailable".to_string())),
        }
    }
}

/// Makes sure `config.json`, the weights (single file or index + shards) and, when the repo has
/// it, `tokenizer.json` are in the local cache; returns the snapshot folder holding them.
pub(crate) fn snapshot(
    repo_id: &str,
    revision: Option<&str>,
    cache_dir: Option<&Path>,
) -> Result<PathBuf> {
    let cache_dir = match cache_dir {
        Some(d) => d.to_path_buf(),
        None => default_cache_dir()?,
    };
    let mut repo = HubRepo::new(repo_id, revision, cache_dir);
    let config = repo.get("config.json")?;
    let dir = config
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| ModelError::Hub(format!("{}: no parent folder", config.display())))?;
    let has_single = repo.cached("model.safetensors").is_some();
    let has_index = repo.cached("model.safetensors.index.json").is_some();
    if has_index && !has_single {
        let index = repo.get("model.safetensors.index.json")?;
        for shard in crate::loader::shard_names(&index)? {
            repo.get(&shard)?;
        }
    } else if let Err(single_err) = repo.get("model.safetensors") {
        let index = repo
            .get("model.safetensors.index.json")
            .map_err(|_| single_err)?;
        for shard in crate::loader::shard_names(&index)? {
            repo.get(&shard)?;
        }
    }
    // The tokenizer is optional: a repo without one still loads.
    let _ = repo.get("tokenizer.json");
    Ok(dir)
}
