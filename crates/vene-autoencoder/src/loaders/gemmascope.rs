//! Gemma Scope: `params.npz` with `W_enc [d, L]`, `W_dec [L, d]`, `b_enc [L]`, `b_dec [d]`,
//! `threshold [L]`; JumpReLU without `b_dec` subtraction.

use std::collections::HashMap;
use std::path::Path;

use super::{
    dir_and_file, expect_len, layer_from_name, orient_of, take, vector_len, LoadOptions, LoadedSae,
    SaeFormat,
};
use crate::core::{saelens_parts, Part};
use crate::util::Orient;
use crate::{AutoencoderError, JumpReLUAutoencoder, Result};

pub(super) fn load(path: &Path, opts: &LoadOptions) -> Result<LoadedSae> {
    let (_, file) = dir_and_file(path, "params.npz");
    let fname = file.display().to_string();
    if !file.is_file() {
        return Err(AutoencoderError::io(
            &file,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    // Sizes first: no header may promise more data than its entry holds.
    crate::npz::check_npz(&file)?;
    let mut map: HashMap<String, candle_core::Tensor> =
        std::panic::catch_unwind(|| candle_core::Tensor::read_npz(&file))
            .map_err(|_| AutoencoderError::invalid_file(&file, "malformed npz"))?
            .map_err(|e| AutoencoderError::invalid_file(&file, format!("cannot read npz: {e}")))?
            .into_iter()
            .collect();
    let w_enc = take(&mut map, "W_enc", &file)?;
    let w_dec = take(&mut map, "W_dec", &file)?;
    let b_enc = take(&mut map, "b_enc", &file)?;
    let b_dec = take(&mut map, "b_dec", &file)?;
    let threshold = take(&mut map, "threshold", &file)?;
    let d_in = vector_len(&fname, "b_dec", &b_dec)?;
    let d_sae = vector_len(&fname, "b_enc", &b_enc)?;
    expect_len(&fname, "threshold", &threshold, d_sae)?;
    let enc_orient = orient_of(&fname, "W_enc", &w_enc, d_in, d_sae, Orient::InOut)?;
    let dec_orient = orient_of(&fname, "W_dec", &w_dec, d_sae, d_in, Orient::InOut)?;
    let to_device = |t: candle_core::Tensor| t.to_device(&opts.device);
    let sae = JumpReLUAutoencoder::from_parts(
        &fname,
        saelens_parts(
            to_device(w_enc)?,
            to_device(b_enc)?,
            to_device(w_dec)?,
            to_device(b_dec)?,
        ),
        Part::new("threshold", to_device(threshold)?),
        enc_orient,
        dec_orient,
        None,
    )?;
    Ok(LoadedSae {
        autoencoder: Box::new(sae),
        format: SaeFormat::GemmaScope,
        architecture: "jumprelu".into(),
        d_in,
        d_sae,
        d_out: d_in,
        hook_name: None,
        output_hook_name: None,
        layer: layer_from_name(&file.to_string_lossy()),
        norm_scaling_factor: None,
        interchange_dim: None,
        prepend_bos: None,
        weights_path: file,
    })
}
