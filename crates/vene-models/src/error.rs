//! The error type of vene-models.

/// What went wrong while building, loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// An error at an intervention point (bad site, bad location, or raised by a hook).
    #[error(transparent)]
    Hook(#[from] vene_hooks::HookError),
    /// An error from candle.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: std::path::PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A JSON file that does not parse (config.json, safetensors index).
    #[error("{path}: invalid JSON: {source}")]
    Json {
        /// The file.
        path: std::path::PathBuf,
        /// The underlying error.
        source: serde_json::Error,
    },
    /// An error from the tokenizers library.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// An error from the Hugging Face hub client (download, cache).
    #[error("hub: {0}")]
    Hub(String),
    /// A weight the model needs is not in the weight files.
    #[error("missing weight tensor '{name}' in {file}")]
    MissingTensor {
        /// The tensor's name.
        name: String,
        /// The weight file(s) searched.
        file: String,
    },
    /// A weight whose shape does not match the config.
    #[error("weight tensor '{name}': expected shape {expected:?} from the config, got {got:?}")]
    ShapeMismatch {
        /// The tensor's name.
        name: String,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },
    /// A weight file that cannot be read as safetensors.
    #[error("weight file {file}: {reason}")]
    CorruptWeights {
        /// The file.
        file: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A config that cannot describe a supported model.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// A token id past the vocabulary.
    #[error("token id {token} is out of range for a vocabulary of {vocab}")]
    TokenOutOfRange {
        /// The offending token id.
        token: i64,
        /// The vocabulary size.
        vocab: usize,
    },
    /// Inputs of the wrong shape, dtype or length.
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

impl ModelError {
    /// Unwraps candle's backtrace/context wrappers and turns "cannot find tensor" and
    /// "unexpected shape" into [`ModelError::MissingTensor`] / [`ModelError::ShapeMismatch`].
    pub(crate) fn from_weight_error(err: candle_core::Error, file: &str) -> Self {
        let mut inner = &err;
        loop {
            match inner {
                candle_core::Error::WithBacktrace { inner: i, .. }
                | candle_core::Error::WithPath { inner: i, .. } => inner = i,
                candle_core::Error::Context { inner: i, .. } => inner = i,
                _ => break,
            }
        }
        match inner {
            candle_core::Error::CannotFindTensor { path } => ModelError::MissingTensor {
                name: path.clone(),
                file: file.to_string(),
            },
            candle_core::Error::UnexpectedShape { msg, expected, got } => {
                ModelError::ShapeMismatch {
                    name: msg
                        .strip_prefix("shape mismatch for ")
                        .unwrap_or(msg)
                        .to_string(),
                    expected: expected.dims().to_vec(),
                    got: got.dims().to_vec(),
                }
            }
            _ => ModelError::Candle(err),
        }
    }

    /// Names the weight file(s) in a [`ModelError::MissingTensor`] that did not know them.
    pub(crate) fn with_file(self, file: &str) -> Self {
        match self {
            ModelError::MissingTensor { name, .. } => ModelError::MissingTensor {
                name,
                file: file.to_string(),
            },
            other => other,
        }
    }
}

/// Result with [`ModelError`].
pub type Result<T> = std::result::Result<T, ModelError>;
