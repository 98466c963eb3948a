//! Plumbing shared by the intervention types: state-dict scalars and moving trainable `Var`s.

use candle_core::{DType, Device, Tensor, Var};

use crate::Result;

/// The `embed_dim` entry of a state dict: an i64 scalar on the CPU.
pub(crate) fn embed_dim_entry(embed_dim: usize) -> Result<(String, Tensor)> {
    Ok((
        "embed_dim".into(),
        Tensor::new(embed_dim as i64, &Device::Cpu)?,
    ))
}

/// The `temperature` entry of a state dict: an f32 scalar on the CPU.
pub(crate) fn temperature_entry(temperature: f64) -> Result<(String, Tensor)> {
    Ok((
        "temperature".into(),
        Tensor::new(temperature as f32, &Device::Cpu)?,
    ))
}

/// Checks that a tensor of shape `dims`, built from the hyperparameter `key` of `type_name`,
/// fits under [`vene_autoencoder::limits::MAX_NEW_TENSOR_ELEMENTS`] (before allocating it).
pub(crate) fn check_new_size(
    type_name: &'static str,
    key: &'static str,
    dims: &[usize],
) -> Result<()> {
    match vene_autoencoder::limits::checked_elements(dims) {
        Some(_) => Ok(()),
        None => Err(crate::InterventionError::BadHyperparam {
            type_name,
            key,
            reason: format!(
                "a tensor of shape {dims:?} exceeds the cap of {} elements",
                vene_autoencoder::limits::MAX_NEW_TENSOR_ELEMENTS
            ),
        }),
    }
}

/// `v` on `device` in `dtype`, as a `Var` (`v` itself when it is already there).
pub(crate) fn var_to(v: &Var, device: &Device, dtype: DType) -> Result<Var> {
    let t = v.as_tensor().to_device(device)?.to_dtype(dtype)?;
    Ok(Var::from_tensor(&t)?)
}
