//! The error type of the CLI and the examples: every crate's error plus the CLI's own.

/// What went wrong in a `vene` command; its message is the one line the CLI prints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// From the facade (configs, interventions, save/load).
    #[error(transparent)]
    Vene(#[from] vene::VeneError),
    /// From loading or running a model.
    #[error(transparent)]
    Model(#[from] vene::models::ModelError),
    /// From loading, running or training an autoencoder.
    #[error(transparent)]
    Autoencoder(#[from] vene::autoencoder::AutoencoderError),
    /// From an intervention.
    #[error(transparent)]
    Intervention(#[from] vene::interventions::InterventionError),
    /// From a hook (sites, units).
    #[error(transparent)]
    Hook(#[from] vene::hooks::HookError),
    /// From a tensor operation.
    #[error("tensor error: {0}")]
    Candle(#[from] candle_core::Error),
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Bad input from the user, with what was wrong.
    #[error("{0}")]
    Invalid(String),
}

impl CliError {
    /// A [`CliError::Invalid`] with this message.
    pub fn invalid(msg: impl Into<String>) -> Self {
        CliError::Invalid(msg.into())
    }

    /// A mapper from an I/O error on `path` to [`CliError::Io`], for `map_err`.
    pub fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> CliError + Copy + '_ {
        move |source| CliError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// The message on one line (inner newlines become `; `).
    pub fn one_line(&self) -> String {
        self.to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Result of the CLI's functions.
pub type Result<T> = std::result::Result<T, CliError>;
