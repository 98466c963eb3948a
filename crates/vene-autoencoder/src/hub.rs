//! Loading SAEs from the Hugging Face hub (hf-hub's sync API), cache first.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Repo, RepoType};

use crate::{load_sae_with, AutoencoderError, HubEnv, LoadOptions, LoadedSae, Result};

/// How to work without the network, appended to every hub failure.
const OFFLINE_HINT: &str = "to work offline, pass a local SAE folder or file, put the SAE in the hub cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), or set HF_HUB_OFFLINE=1 (HubOptions::offline) to use only that cache";

/// Where to look on the hub.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// The hub cache (default: from the environment, see [`HubEnv`]: `$HF_HUB_CACHE`, else
    /// `$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
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
/// [`crate::load_sae_with`]. What `opts` leaves open comes from the environment
/// ([`HubEnv::from_env`]: cache folder, `HF_HUB_OFFLINE`, `HF_ENDPOINT`, progress bar).
pub fn load_sae_from_hub(
    repo_id: &str,
    path_in_repo: &str,
    opts: &HubOptions,
) -> Result<LoadedSae> {
    load_sae_from_hub_with_env(repo_id, path_in_repo, opts, &HubEnv::from_env())
}

/// [`load_sae_from_hub`] with the environment's settings given.
pub(crate) fn load_sae_from_hub_with_env(
    repo_id: &str,
    path_in_repo: &str,
    opts: &HubOptions,
    env: &HubEnv,
) -> Result<LoadedSae> {
    load_sae_with(
        hub_local_path(repo_id, path_in_repo, opts, env)?,
        &opts.load,
    )
}

/// The local path of `path_in_repo` (file or folder) of the model repo `repo_id`: from the
/// cache when it holds the path, else (unless offline) downloaded into it first, every repo
/// file under the path.
pub(crate) fn hub_local_path(
    repo_id: &str,
    path_in_repo: &str,
    opts: &HubOptions,
    env: &HubEnv,
) -> Result<PathBuf> {
    let cache_dir = match opts.cache_dir.clone().or_else(|| env.cache_dir.clone()) {
        Some(d) => d,
        None => {
            return Err(AutoencoderError::Hub(format!(
                "no HF_HUB_CACHE, HF_HOME or HOME to find the hub cache; {OFFLINE_HINT}"
            )))
        }
    };
    let path_in_repo = path_in_repo.trim_matches('/');
    if let Some(p) = cached_path(&cache_dir, repo_id, &opts.revision, path_in_repo) {
        return Ok(p);
    }
    if opts.offline || env.offline {
        return Err(AutoencoderError::Hub(format!(
            "`{path_in_repo}` of `{repo_id}` (revision {}) is not in the cache {} and offline mode is on; {OFFLINE_HINT}",
            opts.revision,
            cache_dir.display()
        )));
    }
    let mut builder =
        ApiBuilder::from_cache(hf_hub::Cache::new(cache_dir.clone())).with_progress(env.progress);
    if let Some(endpoint) = &env.endpoint {
        builder = builder.with_endpoint(endpoint.clone());
    }
    let api = builder.build().map_err(|e| {
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
            "`{path_in_repo}` is not in `{repo_id}` (revision {}); {OFFLINE_HINT}",
            opts.revision
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
        Some(p) => Ok(p),
        None => match last {
            Some(p) if !path_in_repo.is_empty() => Ok(p),
            _ => Err(AutoencoderError::Hub(format!(
                "downloaded `{path_in_repo}` of `{repo_id}` but cannot find it in the cache {}; {OFFLINE_HINT}",
                cache_dir.display()
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    use candle_core::{Device, Tensor};

    /// A SAELens SAE (d_in 2, d_sae 3) at `blocks.1.hook_resid_pre` of `owner/saes` in a cache
    /// folder laid out as hf-hub lays it out.
    fn cached_sae(cache: &Path) {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let repo = cache.join("models--owner--saes");
        let dir = repo
            .join("snapshots")
            .join(sha)
            .join("blocks.1.hook_resid_pre");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), sha).unwrap();
        let cfg = serde_json::json!({"d_in": 2, "d_sae": 3, "architecture": "standard",
            "hook_name": "blocks.1.hook_resid_pre", "prepend_bos": true});
        std::fs::write(dir.join("cfg.json"), cfg.to_string()).unwrap();
        let t = |v: &[f32], shape: &[usize]| Tensor::from_slice(v, shape, &Device::Cpu).unwrap();
        let w: HashMap<String, Tensor> = [
            ("W_enc", t(&[1., 0., 0., 0., 1., 0.], &[2, 3])),
            ("b_enc", t(&[0., 0., 0.], &[3])),
            ("W_dec", t(&[1., 0., 0., 1., 0., 0.], &[3, 2])),
            ("b_dec", t(&[0., 0.], &[2])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        candle_core::safetensors::save(&w, dir.join("sae_weights.safetensors")).unwrap();
    }

    #[test]
    fn the_cache_folder_comes_from_hf_hub_cache_then_hf_home() {
        let tmp = tempfile::tempdir().unwrap();
        let hub_cache = tmp.path().join("c");
        cached_sae(&hub_cache);
        let home = tmp.path().join("h");
        cached_sae(&home.join("hub"));
        let opts = HubOptions::default();
        for (vars, want) in [
            (
                vec![
                    ("HF_HUB_CACHE", hub_cache.clone()),
                    ("HF_HOME", tmp.path().join("x")),
                ],
                &hub_cache,
            ),
            (vec![("HF_HOME", home.clone())], &home.join("hub")),
        ] {
            let env = HubEnv::from_vars(
                |k| {
                    vars.iter()
                        .find(|(n, _)| *n == k)
                        .map(|(_, v)| OsString::from(v))
                        .or_else(|| (k == "HF_HUB_OFFLINE").then(|| "1".into()))
                },
                false,
            );
            let sae =
                load_sae_from_hub_with_env("owner/saes", "blocks.1.hook_resid_pre", &opts, &env)
                    .unwrap();
            assert_eq!((sae.d_in, sae.d_sae, sae.layer), (2, 3, Some(1)));
            assert!(sae.weights_path.starts_with(want), "{:?}", sae.weights_path);
            assert_eq!(sae.prepend_bos, Some(true));
        }
    }

    #[test]
    fn offline_misses_name_the_cache_folder_and_how_to_work_offline() {
        let tmp = tempfile::tempdir().unwrap();
        let env = HubEnv {
            cache_dir: Some(tmp.path().to_path_buf()),
            offline: true,
            ..HubEnv::default()
        };
        let e = load_sae_from_hub_with_env("owner/saes", "layer_3", &HubOptions::default(), &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`layer_3` of `owner/saes` (revision main)"),
            "{e}"
        );
        assert!(e.contains(&tmp.path().display().to_string()), "{e}");
        assert!(e.contains(OFFLINE_HINT), "{e}");
        // No cache folder at all: said so, with the hint.
        let e = load_sae_from_hub_with_env(
            "owner/saes",
            "layer_3",
            &HubOptions::default(),
            &HubEnv::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("no HF_HUB_CACHE, HF_HOME or HOME") && e.contains(OFFLINE_HINT),
            "{e}"
        );
    }
}
