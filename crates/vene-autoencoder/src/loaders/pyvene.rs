//! pyvene: an `AutoencoderIntervention` state dict (`autoencoder.encoder.0.weight`, ...,
//! `embed_dim`, `interchange_dim`), saved by `save_intervention` as `intkey_*.bin` (torch
//! pickle), or a safetensors file (keys with or without the `autoencoder.` prefix).

use std::path::{Path, PathBuf};

use candle_core::DType;

use super::{list_files, LoadOptions, LoadedSae, SaeFormat};
use crate::io::{layer_from_map, read_safetensors};
use crate::layer::ENCODER_WEIGHT;
use crate::{Autoencoder, AutoencoderError, Result};

/// The weights file: `path` itself, or the one `intkey_*.bin` in the folder.
fn weights_file(path: &Path) -> Result<PathBuf> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let bins: Vec<String> = list_files(path)?
        .into_iter()
        .filter(|n| n.starts_with("intkey_") && n.ends_with(".bin"))
        .collect();
    match bins.as_slice() {
        [one] => Ok(path.join(one)),
        [] => Err(AutoencoderError::UnknownFormat {
            path: path.to_path_buf(),
            message: "no intkey_*.bin file".into(),
        }),
        many => Err(AutoencoderError::UnknownFormat {
            path: path.to_path_buf(),
            message: format!("several interventions ({many:?}): pass the file to load"),
        }),
    }
}

pub(super) fn load(path: &Path, opts: &LoadOptions) -> Result<LoadedSae> {
    let file = weights_file(path)?;
    let fname = file.display().to_string();
    let map = if file.extension().is_some_and(|e| e == "safetensors") {
        read_safetensors(&file, &opts.device)?
    } else {
        crate::io::read_torch_pickle(&file, &opts.device)?
    };
    let prefix = if map.contains_key(ENCODER_WEIGHT) {
        ""
    } else {
        "autoencoder."
    };
    let ae = layer_from_map(&map, prefix, &fname)?;
    let interchange_dim = match map.get("interchange_dim") {
        Some(t) if t.rank() == 1 && !t.dtype().is_float() => Some(
            t.to_dtype(DType::I64)?
                .to_vec1::<i64>()?
                .into_iter()
                .map(|i| usize::try_from(i).unwrap_or(usize::MAX))
                .collect(),
        ),
        _ => None,
    };
    let (d_in, d_sae) = (ae.input_dim(), ae.latent_dim());
    Ok(LoadedSae {
        autoencoder: Box::new(ae),
        format: SaeFormat::Pyvene,
        architecture: "standard".into(),
        d_in,
        d_sae,
        d_out: d_in,
        hook_name: None,
        output_hook_name: None,
        layer: None,
        norm_scaling_factor: None,
        interchange_dim,
        prepend_bos: None,
        weights_path: file,
    })
}
