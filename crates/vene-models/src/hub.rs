//! Resolving a hub repo to a local snapshot folder: the cache first, then downloads.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::{ApiBuilder, ApiError};
use hf_hub::{Cache, Repo, RepoType};

use crate::{HubEnv, ModelError, Result};

/// How to work without the network, appended to every hub failure.
pub(crate) const OFFLINE_HINT: &str = "to work offline, pass a local model folder, put the model in the hub cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), or set HF_HUB_OFFLINE=1 to use only that cache";

/// The weight files a repo may hold, in the order they are looked for: safetensors first,
/// then PyTorch checkpoints (each a single file or an index naming shards).
pub(crate) const WEIGHT_FILES: [&str; 4] = [
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
];

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

/// Whether a hub failure is the server saying the file does not exist (HTTP 404).
fn is_not_found(e: &ApiError) -> bool {
    match e {
        ApiError::RequestError(inner) => matches!(**inner, ureq::Error::StatusCode(404)),
        ApiError::TooManyRetries(inner) => is_not_found(inner),
        _ => false,
    }
}

/// One repo at one revision, resolving files through the local cache and downloading the
/// ones it lacks.
struct HubRepo {
    cache: Cache,
    repo: Repo,
    revision: String,
    repo_id: String,
    env: HubEnv,
    api: Option<hf_hub::api::sync::ApiRepo>,
}

impl HubRepo {
    fn new(repo_id: &str, revision: Option<&str>, cache_dir: PathBuf, env: HubEnv) -> Self {
        let revision = revision.unwrap_or("main").to_string();
        Self {
            cache: Cache::new(cache_dir),
            repo: Repo::with_revision(repo_id.to_string(), RepoType::Model, revision.clone()),
            revision,
            repo_id: repo_id.to_string(),
            env,
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

    fn offline_error(&self, what: &str) -> ModelError {
        ModelError::Hub(format!(
            "{}@{}: {what} not in the hub cache {} and HF_HUB_OFFLINE is set; {OFFLINE_HINT}",
            self.repo_id,
            self.revision,
            self.cache.path().display()
        ))
    }

    fn download_error(&self, file: &str, e: &ApiError) -> ModelError {
        ModelError::Hub(format!(
            "could not download {file} of {}@{} from the Hugging Face hub (not in the cache {}, and the hub could not be reached or refused: {e}); {OFFLINE_HINT}",
            self.repo_id,
            self.revision,
            self.cache.path().display()
        ))
    }

    /// Downloads `file` (not in the cache): `Ok(Err(e))` when the hub answered with an error.
    fn download(&mut self, file: &str) -> Result<std::result::Result<PathBuf, ApiError>> {
        if self.api.is_none() {
            let mut builder =
                ApiBuilder::from_cache(self.cache.clone()).with_progress(self.env.progress);
            if let Some(endpoint) = &self.env.endpoint {
                builder = builder.with_endpoint(endpoint.clone());
            }
            let api = builder.build().map_err(|e| {
                ModelError::Hub(format!("cannot start the hub client: {e}; {OFFLINE_HINT}"))
            })?;
            self.api = Some(api.repo(self.repo.clone()));
        }
        match &self.api {
            Some(api) => Ok(api.get(file)),
            None => Err(ModelError::Hub(format!(
                "hub client unavailable; {OFFLINE_HINT}"
            ))),
        }
    }

    /// `file`, from the cache or downloaded; an error when it cannot be had.
    fn get(&mut self, file: &str) -> Result<PathBuf> {
        if let Some(p) = self.cached(file) {
            return Ok(p);
        }
        if self.env.offline {
            return Err(self.offline_error(file));
        }
        self.download(file)?
            .map_err(|e| self.download_error(file, &e))
    }

    /// `file` when the repo has it: `None` when the hub says it does not exist (or, offline,
    /// when the cache lacks it); an error when it exists but could not be fetched.
    fn get_optional(&mut self, file: &str) -> Result<Option<PathBuf>> {
        if let Some(p) = self.cached(file) {
            return Ok(Some(p));
        }
        if self.env.offline {
            return Ok(None);
        }
        match self.download(file)? {
            Ok(p) => Ok(Some(p)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.download_error(file, &e)),
        }
    }

    /// Fetches `name` and, for an index, the shards it lists.
    fn get_weights(&mut self, name: &str, path: PathBuf) -> Result<()> {
        if name.ends_with(".index.json") {
            for shard in crate::loader::shard_names(&path)? {
                self.get(&shard)?;
            }
        }
        Ok(())
    }
}

/// Makes sure `config.json`, the weights (see [`WEIGHT_FILES`]) and, when the repo has them,
/// `tokenizer.json` and `tokenizer_config.json` are in the cache; returns the snapshot folder
/// holding them. Settings not given come from the environment ([`HubEnv::from_env`]).
pub(crate) fn snapshot(
    repo_id: &str,
    revision: Option<&str>,
    cache_dir: Option<&Path>,
) -> Result<PathBuf> {
    snapshot_with(repo_id, revision, cache_dir, HubEnv::from_env())
}

/// [`snapshot`] with explicit settings (`cache_dir`, when given, replaces `env.cache_dir`).
pub(crate) fn snapshot_with(
    repo_id: &str,
    revision: Option<&str>,
    cache_dir: Option<&Path>,
    env: HubEnv,
) -> Result<PathBuf> {
    if !is_repo_id(repo_id) {
        return Err(ModelError::Hub(format!(
            "{repo_id:?} is not a hub repo id (owner/name); for a local model folder use Model::from_dir or load_pretrained"
        )));
    }
    let cache_dir = match cache_dir {
        Some(d) => d.to_path_buf(),
        None => env.cache_dir.clone().ok_or_else(|| {
            ModelError::Hub(format!(
                "no HF_HUB_CACHE, HF_HOME or HOME to find the hub cache; {OFFLINE_HINT}"
            ))
        })?,
    };
    let mut repo = HubRepo::new(repo_id, revision, cache_dir, env);
    let config = repo.get("config.json")?;
    let dir = config.parent().map(Path::to_path_buf).ok_or_else(|| {
        ModelError::Hub(format!(
            "{}: no parent folder; {OFFLINE_HINT}",
            config.display()
        ))
    })?;
    // What the cache already has wins; else ask the hub for each kind in turn.
    let cached = WEIGHT_FILES
        .iter()
        .find_map(|name| repo.cached(name).map(|p| (*name, p)));
    let found = match cached {
        Some(hit) => Some(hit),
        None if repo.env.offline => {
            return Err(repo.offline_error(&format!("no weights ({})", WEIGHT_FILES.join(", "))))
        }
        None => {
            let mut found = None;
            for name in WEIGHT_FILES {
                if let Some(p) = repo.get_optional(name)? {
                    found = Some((name, p));
                    break;
                }
            }
            found
        }
    };
    match found {
        Some((name, path)) => repo.get_weights(name, path)?,
        None => {
            return Err(ModelError::Hub(format!(
                "{repo_id}@{}: the repo has none of {} (no weights vene can read); {OFFLINE_HINT}",
                repo.revision,
                WEIGHT_FILES.join(", ")
            )))
        }
    }
    // The tokenizer is optional (a repo without one still loads), but one that exists and
    // cannot be fetched is an error, not a silent skip.
    repo.get_optional("tokenizer.json").map_err(|e| match e {
        ModelError::Hub(msg) => ModelError::Hub(format!(
            "tokenizer.json could not be fetched (the model itself is in {}): {msg}",
            dir.display()
        )),
        other => other,
    })?;
    // tokenizer_config.json only names special tokens (the BOS token): best effort.
    let _ = repo.get_optional("tokenizer_config.json");
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache folder laid out as hf-hub lays it out, holding `files` of `owner/name` at `main`.
    fn cache_with(root: &Path, repo_id: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let repo = root.join(format!("models--{}", repo_id.replace('/', "--")));
        let snap = repo.join("snapshots").join(sha);
        std::fs::create_dir_all(&snap).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::write(repo.join("refs").join("main"), sha).unwrap();
        for (name, bytes) in files {
            std::fs::write(snap.join(name), bytes).unwrap();
        }
        snap
    }

    fn offline(cache: &Path) -> HubEnv {
        HubEnv {
            cache_dir: Some(cache.to_path_buf()),
            offline: true,
            ..HubEnv::default()
        }
    }

    #[test]
    fn resolves_through_the_env_cache_folder() {
        let tmp = tempfile::tempdir().unwrap();
        // HF_HUB_CACHE wins over HF_HOME: the snapshot is found in the HF_HUB_CACHE folder.
        let hub_cache = tmp.path().join("hub-cache");
        let snap = cache_with(
            &hub_cache,
            "o/m",
            &[("config.json", b"{}"), ("pytorch_model.bin", b"x")],
        );
        let vars = |k: &str| match k {
            "HF_HUB_CACHE" => Some(hub_cache.clone().into_os_string()),
            "HF_HOME" => Some(tmp.path().join("elsewhere").into_os_string()),
            "HF_HUB_OFFLINE" => Some("1".into()),
            _ => None,
        };
        let env = HubEnv::from_vars(vars, false);
        assert_eq!(snapshot_with("o/m", None, None, env).unwrap(), snap);
        // HF_HOME alone: its hub/ folder.
        let home = tmp.path().join("home");
        let snap = cache_with(
            &home.join("hub"),
            "o/m",
            &[("config.json", b"{}"), ("model.safetensors", b"x")],
        );
        let vars = |k: &str| match k {
            "HF_HOME" => Some(home.clone().into_os_string()),
            "HF_HUB_OFFLINE" => Some("1".into()),
            _ => None,
        };
        let env = HubEnv::from_vars(vars, false);
        assert_eq!(snapshot_with("o/m", None, None, env).unwrap(), snap);
    }

    #[test]
    fn offline_errors_name_the_cache_folder_and_what_is_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let e = snapshot_with("o/absent", None, None, offline(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("o/absent@main: config.json not in the hub cache"),
            "{e}"
        );
        assert!(e.contains(&tmp.path().display().to_string()), "{e}");
        assert!(e.contains("HF_HUB_OFFLINE"), "{e}");
        cache_with(tmp.path(), "o/noweights", &[("config.json", b"{}")]);
        let e = snapshot_with("o/noweights", None, None, offline(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no weights (model.safetensors"), "{e}");
        assert!(e.contains("pytorch_model.bin"), "{e}");
        assert!(e.contains(&tmp.path().display().to_string()), "{e}");
    }

    #[test]
    fn an_index_needs_its_shards_in_the_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let index = br#"{"weight_map": {"a": "pytorch_model-00001-of-00002.bin", "b": "pytorch_model-00002-of-00002.bin"}}"#;
        cache_with(
            tmp.path(),
            "o/sharded",
            &[
                ("config.json", b"{}"),
                ("pytorch_model.bin.index.json", index),
                ("pytorch_model-00001-of-00002.bin", b"x"),
            ],
        );
        let e = snapshot_with("o/sharded", None, None, offline(tmp.path()))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("pytorch_model-00002-of-00002.bin not in the hub cache"),
            "{e}"
        );
    }

    #[test]
    fn not_a_repo_id_is_refused_before_any_lookup() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["./no-such-model", "nope/x/gpt2", "gpt2", "/abs/path"] {
            let e = snapshot_with(bad, None, None, offline(tmp.path()))
                .unwrap_err()
                .to_string();
            assert!(e.contains("is not a hub repo id"), "{bad}: {e}");
        }
    }

    #[test]
    fn a_404_is_told_apart_from_other_failures() {
        let nf = ApiError::RequestError(Box::new(ureq::Error::StatusCode(404)));
        assert!(is_not_found(&nf));
        let denied = ApiError::RequestError(Box::new(ureq::Error::StatusCode(403)));
        assert!(!is_not_found(&denied));
        assert!(!is_not_found(&ApiError::IoError(std::io::Error::other(
            "x"
        ))));
    }

    /// A stand-in for the hub on 127.0.0.1 answering what hf-hub asks (`/{repo}/resolve/main/
    /// {file}` with a byte range): `files` are served, `tokenizer.json` gets `tokenizer_status`
    /// when not among them, anything else 404. Its thread lives as long as the test process.
    fn fake_hub(files: Vec<(&'static str, Vec<u8>)>, tokenizer_status: u16) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                if reader.read_line(&mut request).is_err() {
                    continue;
                }
                // `Range: bytes=A-B` (B inclusive) or `bytes=A-` (to the end).
                let (mut start, mut end) = (0usize, None::<usize>);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(r) = lower.strip_prefix("range: bytes=") {
                        let (a, b) = r.trim().split_once('-').unwrap_or(("0", ""));
                        start = a.parse().unwrap_or(0);
                        end = b.parse().ok();
                    }
                }
                let path = request.split(' ').nth(1).unwrap_or("").to_string();
                let file = path.rsplit("/resolve/main/").next().unwrap_or("");
                let response = match files.iter().find(|(n, _)| *n == file) {
                    Some((name, bytes)) => {
                        let stop = end.map_or(bytes.len(), |e| (e + 1).min(bytes.len()));
                        let body = &bytes[start.min(stop)..stop];
                        let mut r = format!(
                            "HTTP/1.1 206 Partial Content\r\nx-repo-commit: 0123456789abcdef0123456789abcdef01234567\r\netag: \"etag-{name}\"\r\ncontent-range: bytes {start}-{}/{}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                            start + body.len().saturating_sub(1),
                            bytes.len(),
                            body.len()
                        )
                        .into_bytes();
                        r.extend_from_slice(body);
                        r
                    }
                    None => {
                        let status = if file == "tokenizer.json" {
                            tokenizer_status
                        } else {
                            404
                        };
                        format!("HTTP/1.1 {status} Nope\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .into_bytes()
                    }
                };
                let _ = stream.write_all(&response);
            }
        });
        format!("http://{addr}")
    }

    fn online(cache: &Path, endpoint: String) -> HubEnv {
        HubEnv {
            cache_dir: Some(cache.to_path_buf()),
            offline: false,
            endpoint: Some(endpoint),
            progress: false,
        }
    }

    #[test]
    fn downloads_fetch_pytorch_weights_and_tell_a_missing_tokenizer_from_a_failed_one() {
        let files = || {
            vec![
                ("config.json", br#"{"model_type": "gpt2"}"#.to_vec()),
                ("pytorch_model.bin", b"PK\x03\x04 weights".to_vec()),
            ]
        };
        // No tokenizer.json in the repo (404): the snapshot holds config and weights only.
        let tmp = tempfile::tempdir().unwrap();
        let dir = snapshot_with(
            "o/m",
            None,
            None,
            online(tmp.path(), fake_hub(files(), 404)),
        )
        .unwrap();
        assert_eq!(
            std::fs::read(dir.join("pytorch_model.bin")).unwrap(),
            b"PK\x03\x04 weights"
        );
        assert!(dir.join("config.json").is_file());
        assert!(!dir.join("tokenizer.json").exists());
        assert!(!dir.join("model.safetensors").exists());
        // tokenizer.json exists but cannot be fetched (a server error): said so.
        let tmp = tempfile::tempdir().unwrap();
        let e = snapshot_with(
            "o/m",
            None,
            None,
            online(tmp.path(), fake_hub(files(), 500)),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("tokenizer.json could not be fetched"), "{e}");
        assert!(e.contains("500"), "{e}");
        assert!(e.contains(OFFLINE_HINT), "{e}");
        // A repo with no weights vene reads.
        let tmp = tempfile::tempdir().unwrap();
        let only_config = vec![("config.json", b"{}".to_vec())];
        let e = snapshot_with(
            "o/m",
            None,
            None,
            online(tmp.path(), fake_hub(only_config, 404)),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("the repo has none of model.safetensors"), "{e}");
    }
}
