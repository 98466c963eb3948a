//! The error type of vene-interventions.

/// What went wrong building, running, saving or loading an intervention.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InterventionError {
    /// A selected dim (or latent index) past the width it indexes.
    #[error("{what} {index} is out of range: the {space} has width {width}")]
    DimOutOfRange {
        /// What was indexed ("interchange dim", "latent index", "subspace dim").
        what: &'static str,
        /// The offending index.
        index: usize,
        /// The space indexed ("representation", "latent space", "rotated space").
        space: &'static str,
        /// The width of that space.
        width: usize,
    },
    /// A tensor whose last dimension is not the intervention's width.
    #[error("{what}: expected last dimension {expected}, got shape {got:?}")]
    WidthMismatch {
        /// What the tensor is ("base", "source", "constant source").
        what: &'static str,
        /// The width expected.
        expected: usize,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A tensor of the wrong shape (rank, batch, units).
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        /// What the tensor is.
        what: &'static str,
        /// The expected shape, in words.
        expected: String,
        /// The shape given.
        got: Vec<usize>,
    },
    /// A source that cannot be broadcast to the base.
    #[error("source of shape {source_shape:?} cannot be broadcast to base of shape {base:?} (give [B, n_units, d] from a source run, or a constant [d])")]
    Unbroadcastable {
        /// The source's shape.
        source_shape: Vec<usize>,
        /// The base's shape.
        base: Vec<usize>,
    },
    /// An intervention that needs a source got none.
    #[error("{type_name} needs a source (a source run or a constant vector) but got none")]
    MissingSource {
        /// The intervention's type name.
        type_name: &'static str,
    },
    /// A per-example selection whose length is not the batch size.
    #[error("per-example selection has {got} entries but the batch has {batch} examples")]
    SelectionBatch {
        /// Entries in the selection.
        got: usize,
        /// The batch size.
        batch: usize,
    },
    /// A type name that is not a built-in intervention.
    #[error("unknown intervention type '{0}'; known: VanillaIntervention, AdditionIntervention, SubtractionIntervention, ZeroIntervention, CollectIntervention, SkipIntervention, NoiseIntervention, RotatedSpaceIntervention, LowRankRotatedSpaceIntervention, BoundlessRotatedSpaceIntervention, SigmoidMaskRotatedSpaceIntervention, SigmoidMaskIntervention, AutoencoderIntervention, JumpReLUAutoencoderIntervention, PCARotatedSpaceIntervention, or a type registered with register_intervention")]
    UnknownType(String),
    /// A tensor missing from a state dict when rebuilding an intervention.
    #[error("{type_name}: state dict has no tensor '{key}'")]
    MissingState {
        /// The intervention's type name.
        type_name: &'static str,
        /// The missing tensor's name.
        key: String,
    },
    /// A hyperparameter that is missing or invalid.
    #[error("{type_name}: bad hyperparameter '{key}': {reason}")]
    BadHyperparam {
        /// The intervention's type name.
        type_name: &'static str,
        /// The hyperparameter's name.
        key: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A dim selected twice.
    #[error("{what} {index} is selected more than once")]
    DuplicateDim {
        /// What was indexed.
        what: &'static str,
        /// The repeated index.
        index: usize,
    },
    /// An operation this intervention cannot do (e.g. saving a custom autoencoder).
    #[error("{0}")]
    Unsupported(String),
    /// An error from the masked-combine kernels.
    #[error(transparent)]
    Kernel(#[from] vene_kernels::KernelError),
    /// An error from the autoencoder.
    #[error(transparent)]
    Autoencoder(#[from] vene_autoencoder::AutoencoderError),
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result with [`InterventionError`].
pub type Result<T> = std::result::Result<T, InterventionError>;
