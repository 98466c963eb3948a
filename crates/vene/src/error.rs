//! The error type of the facade: every crate's error plus the facade's own.

use vene_hooks::HookError;
use vene_interventions::InterventionError;

/// What went wrong building, running, training, saving or loading an intervenable model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VeneError {
    /// A source batch whose size differs from the base batch.
    #[error("source {source_index} has batch size {got}, but the base has {base}")]
    SourceBatch {
        /// Which source (in the order given).
        source_index: usize,
        /// Its batch size.
        got: usize,
        /// The base batch size.
        base: usize,
    },
    /// The wrong number of sources for the interventions' groups.
    #[error("{got} sources given, but the config has {groups} intervention groups (give one source per group, or one for all)")]
    SourceCount {
        /// Sources given.
        got: usize,
        /// Groups in the config.
        groups: usize,
    },
    /// Unit locations that do not fit the config or the inputs.
    #[error("unit locations: {0}")]
    Locations(String),
    /// Subspaces that do not fit the config or the intervention.
    #[error("subspaces: {0}")]
    Subspaces(String),
    /// An autoencoder whose input width differs from the component's width.
    #[error("autoencoder input_dim {input_dim} does not match the width {width} of {component} at layer {layer}{}", flatten_hint(*input_dim, *width))]
    AutoencoderWidth {
        /// The autoencoder's input width.
        input_dim: usize,
        /// The component's width in this model.
        width: usize,
        /// The component.
        component: vene_hooks::Component,
        /// The layer.
        layer: usize,
    },
    /// A latent dim past the autoencoder's latent width.
    #[error("interchange dim {dim} is out of range for latent_dim {latent_dim}")]
    LatentDimOutOfRange {
        /// The offending dim.
        dim: usize,
        /// The autoencoder's latent width.
        latent_dim: usize,
    },
    /// A config that cannot be used (missing or conflicting fields).
    #[error("config: {0}")]
    Config(String),
    /// A config.json written by a newer vene.
    #[error("{path}: format_version {found} is newer than this vene reads (up to {supported}); upgrade vene")]
    NewerFormat {
        /// The config file.
        path: String,
        /// The version found.
        found: u32,
        /// The newest version this vene reads.
        supported: u32,
    },
    /// A saved folder missing a file or holding a file that cannot be read.
    #[error("{path}: {reason}")]
    SavedFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A state file that a saved folder needs (listed in its `config.json`, or required by
    /// the intervention's type) is absent: the save is incomplete.
    #[error("{path}: missing state file of representation {key} ({type_name}); the saved folder is incomplete")]
    MissingStateFile {
        /// The file that should be there.
        path: String,
        /// The representation's key.
        key: String,
        /// The intervention's type.
        type_name: String,
    },
    /// A state file whose size or checksum differs from the manifest of `config.json`.
    #[error(
        "{path}: state file of representation {key} was altered since it was saved ({reason})"
    )]
    AlteredStateFile {
        /// The file.
        path: String,
        /// The representation's key.
        key: String,
        /// What differs (size, sha256).
        reason: String,
    },
    /// A saved tensor holding NaN or infinite values.
    #[error("{path}: tensor `{tensor}` of representation {key} holds non-finite values (NaN or infinity)")]
    NonFiniteState {
        /// The state file.
        path: String,
        /// The representation's key.
        key: String,
        /// The tensor's name.
        tensor: String,
    },
    /// A state file that could not be turned back into its intervention.
    #[error("{path} (representation {key}): {source}")]
    BadState {
        /// The state file.
        path: String,
        /// The representation's key.
        key: String,
        /// What went wrong.
        source: Box<VeneError>,
    },
    /// A folder that `save` will not write into: it holds files (and overwrite was not
    /// chosen), or it holds files that are not a saved model.
    #[error("{path}: {reason}")]
    SaveTarget {
        /// The folder.
        path: String,
        /// Why.
        reason: String,
    },
    /// An intervention that pyvene's `IntervenableModel.load` could not rebuild from a folder
    /// (a type pyvene lacks, or settings its classes cannot hold).
    #[error("representation {key} ({type_name}) cannot be saved for pyvene: {reason}")]
    NotForPyvene {
        /// The representation's key.
        key: String,
        /// The intervention's type.
        type_name: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// A HuggingFace module path (pyvene's string components) that vene cannot map.
    #[error("component '{0}' is a module path vene cannot map to a component; use one of pyvene's component names (block_output, mlp_output, ...)")]
    UnmappedModulePath(String),
    /// A step of training that cannot run (no trainable parameters, bad labels).
    #[error("training: {0}")]
    Training(String),
    /// An error at a hook site (bad positions, heads, shapes).
    #[error(transparent)]
    Hook(HookError),
    /// An error raised by an intervention.
    #[error(transparent)]
    Intervention(#[from] InterventionError),
    /// An error of an autoencoder.
    #[error(transparent)]
    Autoencoder(#[from] vene_autoencoder::AutoencoderError),
    /// An error of a model (loading, bad input ids).
    #[error(transparent)]
    Model(vene_models::ModelError),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// A JSON error (config parsing), with what was parsed.
    #[error("{what}: {source}")]
    Json {
        /// What was being parsed.
        what: String,
        /// The parser's error.
        source: serde_json::Error,
    },
    /// A file-system error, with the path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
}

impl From<HookError> for VeneError {
    /// Unwraps errors that interventions raised inside a hook back into their own variant.
    fn from(e: HookError) -> Self {
        match e {
            HookError::Hook(inner) => match inner.downcast::<VeneError>() {
                Ok(v) => *v,
                Err(inner) => match inner.downcast::<InterventionError>() {
                    Ok(i) => VeneError::Intervention(*i),
                    Err(inner) => VeneError::Hook(HookError::Hook(inner)),
                },
            },
            other => VeneError::Hook(other),
        }
    }
}

impl From<vene_models::ModelError> for VeneError {
    /// Hook errors carried through the model are unwrapped as in `From<HookError>`.
    fn from(e: vene_models::ModelError) -> Self {
        match e {
            vene_models::ModelError::Hook(h) => h.into(),
            other => VeneError::Model(other),
        }
    }
}

/// Result with [`VeneError`].
pub type Result<T> = std::result::Result<T, VeneError>;

/// For an autoencoder as wide as several units: pyvene flattens `max_number_of_units` units
/// into one vector before its autoencoder, vene applies the autoencoder to each unit.
fn flatten_hint(input_dim: usize, width: usize) -> String {
    if width > 0 && input_dim > width && input_dim.is_multiple_of(width) {
        format!(
            " ({input_dim} = {} x {width}: pyvene flattens max_number_of_units units into one \
             vector before the autoencoder; vene applies it to each unit, so use an autoencoder \
             of width {width})",
            input_dim / width
        )
    } else {
        String::new()
    }
}
