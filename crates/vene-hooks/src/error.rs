//! The error type of vene-hooks.

/// What went wrong at an intervention point.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HookError {
    /// A component name that pyvene does not know.
    #[error("unknown component '{name}'; valid components: {valid}")]
    UnknownComponent {
        /// The name given.
        name: String,
        /// The valid names, comma separated.
        valid: String,
    },
    /// A unit name other than `pos`, `h`, `h.pos`.
    #[error("unknown unit '{0}'; valid units: pos, h, h.pos")]
    UnknownUnit(String),
    /// A layer index past the model's depth.
    #[error("layer {layer} is out of range: the model has {n_layers} layers")]
    LayerOutOfRange {
        /// The layer asked for.
        layer: usize,
        /// The model's number of layers.
        n_layers: usize,
    },
    /// A component the model does not have (e.g. attention_weight on Llama).
    #[error("component {component} is not available on {model}")]
    ComponentUnavailable {
        /// The component asked for.
        component: crate::Component,
        /// The model's name.
        model: String,
    },
    /// A position past the sequence.
    #[error(
        "example {example}: position {position} is out of range for a sequence of {len} tokens"
    )]
    PositionOutOfRange {
        /// The example (batch row).
        example: usize,
        /// The offending position.
        position: usize,
        /// The sequence length.
        len: usize,
    },
    /// A head index past the number of heads.
    #[error("example {example}: head {head} is out of range for {n_heads} heads")]
    HeadOutOfRange {
        /// The example (batch row).
        example: usize,
        /// The offending head.
        head: usize,
        /// The number of heads at the component.
        n_heads: usize,
    },
    /// Unit locations that do not fit the batch (wrong number of examples, ragged lists).
    #[error("unit locations: {0}")]
    BadLocations(String),
    /// A tensor of an unexpected shape.
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        /// What the tensor is.
        what: String,
        /// The expected shape, in words.
        expected: String,
        /// The shape it has.
        got: Vec<usize>,
    },
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// An error raised by a hook (an intervention, a collector) and carried through the model.
    #[error(transparent)]
    Hook(Box<dyn std::error::Error + Send + Sync>),
}

/// Result with [`HookError`].
pub type Result<T> = std::result::Result<T, HookError>;
