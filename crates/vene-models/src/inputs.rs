//! Validation of model inputs.

use candle_core::{DType, Tensor};

use crate::{ModelError, Result};

/// Checks `input_ids` (`[B, T]`, u32 / i64 / u8, every id below `vocab`) and returns them as
/// u32 with the batch size and length.
pub(crate) fn check_ids(input_ids: &Tensor, vocab: usize) -> Result<(Tensor, usize, usize)> {
    let (b, t) = input_ids.dims2().map_err(|_| {
        ModelError::InvalidInput(format!(
            "input_ids: expected shape [batch, seq], got {:?}",
            input_ids.dims()
        ))
    })?;
    if b == 0 || t == 0 {
        return Err(ModelError::InvalidInput(format!(
            "input_ids: empty batch or sequence (shape [{b}, {t}])"
        )));
    }
    let ids = match input_ids.dtype() {
        DType::U32 | DType::U8 | DType::I64 => input_ids.to_dtype(DType::I64)?,
        other => {
            return Err(ModelError::InvalidInput(format!(
                "input_ids: expected an integer dtype (u32 or i64), got {other:?}"
            )))
        }
    };
    let flat = ids.flatten_all()?;
    let min = flat.min(0)?.to_scalar::<i64>()?;
    let max = flat.max(0)?.to_scalar::<i64>()?;
    let bad = if min < 0 { min } else { max };
    if min < 0 || max as u64 >= vocab as u64 {
        return Err(ModelError::TokenOutOfRange { token: bad, vocab });
    }
    Ok((ids.to_dtype(DType::U32)?, b, t))
}
