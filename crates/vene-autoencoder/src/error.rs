//! The error type of vene-autoencoder.

use std::path::PathBuf;

/// What went wrong building, loading, running or training an autoencoder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AutoencoderError {
    /// An input whose last dimension is not the autoencoder's width.
    #[error("{what}: expected last dimension {expected}, got shape {got:?}")]
    WidthMismatch {
        /// What was passed (input, latent).
        what: &'static str,
        /// The width expected.
        expected: usize,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A latent index past `latent_dim`.
    #[error("latent index {index} is out of range for latent_dim {latent_dim}")]
    LatentOutOfRange {
        /// The index given.
        index: usize,
        /// The autoencoder's latent width.
        latent_dim: usize,
    },
    /// A weight tensor whose shape does not fit the others or the configuration.
    #[error("{file}: tensor `{tensor}` has shape {got:?}, expected {expected}")]
    ShapeMismatch {
        /// The file (or source) the tensor came from.
        file: String,
        /// The tensor's name.
        tensor: String,
        /// What was expected, in words (e.g. `[16, 32] or [32, 16]`).
        expected: String,
        /// The shape found.
        got: Vec<usize>,
    },
    /// A tensor the format requires is absent.
    #[error("{file}: missing tensor `{tensor}`")]
    MissingTensor {
        /// The file searched.
        file: String,
        /// The tensor's name.
        tensor: String,
    },
    /// A weight tensor holding NaN or infinite values.
    #[error("{file}: tensor `{tensor}` holds non-finite values (NaN or infinity)")]
    NonFinite {
        /// The file (or source) the tensor came from.
        file: String,
        /// The tensor's name.
        tensor: String,
    },
    /// Weights of different dtypes, or a dtype the operation cannot use.
    #[error("dtype mismatch: {0}")]
    DTypeMismatch(String),
    /// A file that cannot be parsed (truncated, corrupt, not the format announced).
    #[error("{path}: {message}")]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A configuration value this crate cannot honour (unknown architecture, activation,
    /// normalisation, ...).
    #[error("{file}: unsupported {key} `{value}` (supported: {supported})")]
    Unsupported {
        /// The configuration file.
        file: String,
        /// The configuration key.
        key: String,
        /// The value found.
        value: String,
        /// The values this crate supports for `key`.
        supported: &'static str,
    },
    /// A configuration that is missing a required key or holds a value of the wrong type.
    #[error("{file}: config key `{key}`: {message}")]
    InvalidConfig {
        /// The configuration file.
        file: String,
        /// The key at fault.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// A folder whose files match no known SAE format, or match several.
    #[error("{path}: {message}")]
    UnknownFormat {
        /// The folder or file given.
        path: PathBuf,
        /// What was found.
        message: String,
    },
    /// An invalid argument (e.g. `k = 0` for a TopK autoencoder, bad training config).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A file absent from the Hugging Face cache or hub.
    #[error("hub: {0}")]
    Hub(String),
    /// A pretrained-SAE release the registry does not know.
    #[error(
        "unknown SAE release `{name}`{}; {count} releases are known: list them with `vene sae-releases` (pretrained_releases())",
        did_you_mean(.closest)
    )]
    UnknownRelease {
        /// The release asked for.
        name: String,
        /// The known releases nearest to it (at most a few).
        closest: Vec<String>,
        /// How many releases are known.
        count: usize,
    },
    /// An SAE id that a release does not have.
    #[error("release `{release}` has no SAE id `{id}`{}; {valid}", did_you_mean(.closest))]
    UnknownSaeId {
        /// The release.
        release: String,
        /// The id asked for.
        id: String,
        /// The release's ids nearest to it (at most a few).
        closest: Vec<String>,
        /// The valid ids, in words: all of them for a small release, else their number,
        /// examples and where to list them (boxed: keeps this error type small).
        valid: Box<str>,
    },
    /// A pretrained-SAE registry file that cannot be used (invalid JSON, unknown format, a
    /// duplicate release or id).
    #[error("SAE registry {origin}: {message}")]
    Registry {
        /// The registry file (or `built-in`).
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// A training checkpoint that is missing, incomplete, corrupt, or made for another SAE.
    #[error("checkpoint {path}: {message}")]
    InvalidCheckpoint {
        /// The checkpoint folder (or the file in it).
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// An I/O error on a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An activation store that cannot be written or read (missing or corrupt shard, bad
    /// manifest).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl AutoencoderError {
    /// An [`AutoencoderError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`AutoencoderError::InvalidFile`] for `path`.
    pub(crate) fn invalid_file(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        Self::InvalidFile {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

/// `; did you mean `a`, `b`?` for a non-empty list of suggestions, else nothing.
fn did_you_mean(closest: &[String]) -> String {
    if closest.is_empty() {
        return String::new();
    }
    let names: Vec<String> = closest.iter().map(|c| format!("`{c}`")).collect();
    format!("; did you mean {}?", names.join(", "))
}

/// Result with [`AutoencoderError`].
pub type Result<T> = std::result::Result<T, AutoencoderError>;
