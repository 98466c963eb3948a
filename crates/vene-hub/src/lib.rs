//! The Hugging Face hub settings the environment gives: cache folder, offline mode, endpoint,
//! progress bar. vene-models (models) and vene-autoencoder (SAEs) both read them from here and
//! re-export [`HubEnv`].

#![warn(missing_docs)]

use std::ffi::OsString;
use std::path::PathBuf;

/// Hub settings, as `huggingface_hub` reads them from the environment:
///
/// - cache folder: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`,
///   else `~/.cache/huggingface/hub`;
/// - `HF_HUB_OFFLINE=1` (also `true`, `yes`, `on`): only the cache, never the network;
/// - `HF_ENDPOINT`: another hub server (a mirror);
/// - the download progress bar: on when stderr is a terminal; `VENE_PROGRESS=0` / `1` forces it.
///
/// ```
/// use std::ffi::OsString;
/// use vene_hub::HubEnv;
///
/// let vars = |k: &str| match k {
///     "HF_HOME" => Some(OsString::from("/data/hf")),
///     "HF_HUB_OFFLINE" => Some(OsString::from("1")),
///     _ => None,
/// };
/// let env = HubEnv::from_vars(vars, false);
/// assert_eq!(env.cache_dir, Some("/data/hf/hub".into()));
/// assert!(env.offline && !env.progress);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HubEnv {
    /// The hub cache folder (`None` when neither the variables nor `HOME` give one).
    pub cache_dir: Option<PathBuf>,
    /// Only the cache, never the network.
    pub offline: bool,
    /// The hub server, when not the default `https://huggingface.co`.
    pub endpoint: Option<String>,
    /// Whether downloads show a progress bar on stderr.
    pub progress: bool,
}

/// Whether a boolean environment value says yes (`1`, `true`, `yes`, `on`).
fn truthy(v: &OsString) -> bool {
    matches!(
        v.to_string_lossy().trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

/// Whether a boolean environment value says no (`0`, `false`, `no`, `off`).
fn falsy(v: &OsString) -> bool {
    matches!(
        v.to_string_lossy().trim().to_ascii_lowercase().as_str(),
        "0" | "false" | "no" | "off"
    )
}

impl HubEnv {
    /// The settings of this process's environment.
    pub fn from_env() -> Self {
        use std::io::IsTerminal;
        Self::from_vars(|k| std::env::var_os(k), std::io::stderr().is_terminal())
    }

    /// The settings that the variables `var` returns give (a pure function: `var(name)` is the
    /// value of the variable `name`, `stderr_is_terminal` decides the default progress bar).
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>, stderr_is_terminal: bool) -> Self {
        let set = |k: &str| var(k).filter(|v| !v.is_empty());
        let cache_dir = if let Some(c) = set("HF_HUB_CACHE") {
            Some(PathBuf::from(c))
        } else if let Some(h) = set("HF_HOME") {
            Some(PathBuf::from(h).join("hub"))
        } else if let Some(x) = set("XDG_CACHE_HOME") {
            Some(PathBuf::from(x).join("huggingface").join("hub"))
        } else {
            set("HOME").map(|h| {
                PathBuf::from(h)
                    .join(".cache")
                    .join("huggingface")
                    .join("hub")
            })
        };
        let progress = match set("VENE_PROGRESS") {
            Some(v) if truthy(&v) => true,
            Some(v) if falsy(&v) => false,
            _ => stderr_is_terminal,
        };
        Self {
            cache_dir,
            offline: set("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)),
            endpoint: set("HF_ENDPOINT").map(|v| v.to_string_lossy().trim().to_string()),
            progress,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)], tty: bool) -> HubEnv {
        let pairs: Vec<(String, OsString)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), OsString::from(v)))
            .collect();
        HubEnv::from_vars(
            |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()),
            tty,
        )
    }

    #[test]
    fn cache_folder_precedence() {
        let all = [
            ("HF_HUB_CACHE", "/c"),
            ("HF_HOME", "/h"),
            ("XDG_CACHE_HOME", "/x"),
            ("HOME", "/home/u"),
        ];
        assert_eq!(env(&all, false).cache_dir, Some(PathBuf::from("/c")));
        assert_eq!(
            env(&all[1..], false).cache_dir,
            Some(PathBuf::from("/h/hub"))
        );
        assert_eq!(
            env(&all[2..], false).cache_dir,
            Some(PathBuf::from("/x/huggingface/hub"))
        );
        assert_eq!(
            env(&all[3..], false).cache_dir,
            Some(PathBuf::from("/home/u/.cache/huggingface/hub"))
        );
        assert_eq!(env(&[], false).cache_dir, None);
        // an empty variable counts as unset
        assert_eq!(
            env(&[("HF_HUB_CACHE", ""), ("HF_HOME", "/h")], false).cache_dir,
            Some(PathBuf::from("/h/hub"))
        );
    }

    #[test]
    fn offline_endpoint_and_progress() {
        for (v, want) in [
            ("1", true),
            ("TRUE", true),
            ("on", true),
            ("0", false),
            ("", false),
        ] {
            assert_eq!(env(&[("HF_HUB_OFFLINE", v)], false).offline, want, "{v}");
        }
        assert_eq!(
            env(&[("HF_ENDPOINT", "https://mirror.example ")], false).endpoint,
            Some("https://mirror.example".to_string())
        );
        assert_eq!(env(&[], false).endpoint, None);
        assert!(env(&[], true).progress);
        assert!(!env(&[], false).progress);
        assert!(!env(&[("VENE_PROGRESS", "0")], true).progress);
        assert!(env(&[("VENE_PROGRESS", "1")], false).progress);
        // an unknown value leaves the terminal's default
        assert!(env(&[("VENE_PROGRESS", "maybe")], true).progress);
    }
}
