//! Typed errors of the kernels.

use candle_core::{DType, Shape};

/// What went wrong in a masked swap / combine call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// `source` is neither the shape of `base` nor a vector of the last dimension of `base`.
    #[error(
        "shape mismatch: source {source_shape:?} must equal base {base_shape:?} or be a vector of its last dimension"
    )]
    ShapeMismatch {
        /// Shape of the base tensor.
        base_shape: Shape,
        /// Shape of the source tensor.
        source_shape: Shape,
    },
    /// `base` has no last (latent) dimension: a scalar cannot be swapped into.
    #[error("base must have at least one dimension, got a scalar")]
    ScalarInput,
    /// A selected latent index is not below the width of the last dimension.
    #[error("latent index {index} out of range for width {width}")]
    IndexOutOfRange {
        /// The offending index.
        index: usize,
        /// The size of the last dimension.
        width: usize,
    },
    /// The same latent index was selected twice in one selection.
    #[error("latent index {index} selected more than once")]
    DuplicateIndex {
        /// The repeated index.
        index: usize,
    },
    /// A per-row selection does not have one list per row (or per example of dim 0).
    #[error(
        "per-row selection has {lists} lists; expected {rows} (one per row) or {examples} (one per example of dim 0)"
    )]
    RowCountMismatch {
        /// Number of index lists given.
        lists: usize,
        /// Number of rows (product of all dims but the last).
        rows: usize,
        /// Size of dim 0.
        examples: usize,
    },
    /// `base` and `source` have different dtypes.
    #[error("dtype mismatch: base is {base_dtype:?}, source is {source_dtype:?}")]
    DTypeMismatch {
        /// DType of the base tensor.
        base_dtype: DType,
        /// DType of the source tensor.
        source_dtype: DType,
    },
    /// The dtype is not one of f32, f64, f16, bf16.
    #[error("unsupported dtype {0:?}: masked swap supports f32, f64, f16 and bf16")]
    UnsupportedDType(DType),
    /// `base` and `source` live on different devices.
    #[error("device mismatch: base and source are on different devices")]
    DeviceMismatch,
    /// An in-place swap needs a contiguous base (it cannot fall back to a copy).
    #[error("in-place masked swap needs a contiguous base tensor")]
    NotContiguous,
    /// An input of a CPU fast-path op (activation, norm, softmax, attention, linear) has a
    /// shape the op cannot take.
    #[error("{op}: {detail}")]
    BadShape {
        /// The op, e.g. `"layer_norm"`.
        op: &'static str,
        /// What is wrong, naming the shapes.
        detail: String,
    },
    /// An input of a fast-path op has a dtype the op cannot take.
    #[error("{op}: {what} must be {expected:?}, got {got:?}")]
    WrongDType {
        /// The op, e.g. `"attention"`.
        op: &'static str,
        /// Which input.
        what: &'static str,
        /// The dtype it must have.
        expected: DType,
        /// The dtype it has.
        got: DType,
    },
    /// The inputs of a fast-path op live on different devices.
    #[error("{op}: inputs are on different devices")]
    DevicesDiffer {
        /// The op.
        op: &'static str,
    },
    /// An error from candle.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, KernelError>;
