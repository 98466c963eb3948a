//! The bridge to vene-kernels' errors.

use vene_kernels::KernelError;

use crate::ModelError;

/// A kernel error as a model error: candle's errors pass through; the kernels' own (shapes,
/// dtypes, devices: inputs that do not fit the layer) become [`ModelError::InvalidInput`].
pub(crate) fn kernel_error(e: KernelError) -> ModelError {
    match e {
        KernelError::Candle(e) => ModelError::Candle(e),
        other => ModelError::InvalidInput(other.to_string()),
    }
}
