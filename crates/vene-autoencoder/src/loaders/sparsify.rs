//! EleutherAI sparsify: a folder per hookpoint with `cfg.json` (`k`, `num_latents`,
//! `expansion_factor`, `d_in`, `activation`, `skip_connection`, `transcode`) and
//! `sae.safetensors` (`encoder.weight [L, d]`, `encoder.bias [L]`, `W_dec [L, d]`, `b_dec [d]`,
//! and `W_skip [d, d]` with `skip_connection`); TopK of `relu(encoder(x - b_dec))`.
//!
//! - `skip_connection: true`: the reconstruction of `x` gains `x @ W_skip^T` (sparsify's
//!   `sae_out += x @ W_skip.mT`, on the raw input): see [`crate::Autoencoder::decode_for`].
//! - `transcode: true`: a transcoder (sparsify's `SparseCoder` with `transcode`), which reads a
//!   module's input and predicts its output: `b_dec` is not subtracted from the input
//!   (`encode = topk(relu(encoder(x)))`). Input and output widths are both `d_in`.

use std::path::Path;

use super::{
    cfg_str, cfg_usize, dir_and_file, expect_len, layer_from_name, orient_of, read_json, take,
    vector_len, LoadOptions, LoadedSae, SaeFormat,
};
use crate::core::Part;
use crate::io::read_safetensors;
use crate::util::Orient;
use crate::{AutoencoderError, Result, TopKAutoencoder};

pub(super) fn load(path: &Path, opts: &LoadOptions) -> Result<LoadedSae> {
    let (dir, weights) = dir_and_file(path, "sae.safetensors");
    let cfg_path = dir.join("cfg.json");
    let cfg = read_json(&cfg_path)?;
    let cfg_file = cfg_path.display().to_string();
    let wfile = weights.display().to_string();
    let k = cfg_usize(&cfg, "k", &cfg_path)?.ok_or_else(|| AutoencoderError::InvalidConfig {
        file: cfg_file.clone(),
        key: "k".into(),
        message: "missing".into(),
    })?;
    let activation = cfg_str(&cfg, "activation").unwrap_or("topk");
    if activation != "topk" {
        return Err(AutoencoderError::Unsupported {
            file: cfg_file,
            key: "activation".into(),
            value: activation.to_string(),
            supported: "topk",
        });
    }
    let flag = |key: &str| -> Result<bool> {
        match cfg.get(key) {
            None | Some(serde_json::Value::Null) => Ok(false),
            Some(v) => v.as_bool().ok_or_else(|| AutoencoderError::InvalidConfig {
                file: cfg_file.clone(),
                key: key.to_string(),
                message: format!("expected true or false, got {v}"),
            }),
        }
    };
    let skip = flag("skip_connection")?;
    let transcode = flag("transcode")?;
    let mut map = read_safetensors(&weights, &opts.device)?;
    let w_enc = take(&mut map, "encoder.weight", &weights)?;
    let b_enc = take(&mut map, "encoder.bias", &weights)?;
    let w_dec = take(&mut map, "W_dec", &weights)?;
    let b_dec = take(&mut map, "b_dec", &weights)?;
    let d_in = match cfg_usize(&cfg, "d_in", &cfg_path)? {
        Some(d) => {
            expect_len(&wfile, "b_dec", &b_dec, d)?;
            d
        }
        None => vector_len(&wfile, "b_dec", &b_dec)?,
    };
    let num_latents = cfg_usize(&cfg, "num_latents", &cfg_path)?.unwrap_or(0);
    let d_sae = if num_latents > 0 {
        num_latents
    } else {
        match cfg_usize(&cfg, "expansion_factor", &cfg_path)? {
            Some(e) => d_in
                .checked_mul(e)
                .ok_or_else(|| AutoencoderError::InvalidConfig {
                    file: cfg_file.clone(),
                    key: "expansion_factor".into(),
                    message: format!("d_in {d_in} times {e} overflows"),
                })?,
            None => vector_len(&wfile, "encoder.bias", &b_enc)?,
        }
    };
    expect_len(&wfile, "encoder.bias", &b_enc, d_sae)?;
    let enc_orient = orient_of(&wfile, "encoder.weight", &w_enc, d_in, d_sae, Orient::OutIn)?;
    let dec_orient = orient_of(&wfile, "W_dec", &w_dec, d_sae, d_in, Orient::InOut)?;
    let sae = TopKAutoencoder::from_parts(
        &wfile,
        [
            Part::new("encoder.weight", w_enc),
            Part::new("encoder.bias", b_enc),
            Part::new("W_dec", w_dec),
            Part::new("b_dec", b_dec),
        ],
        enc_orient,
        dec_orient,
        k,
    )?
    .with_apply_b_dec_to_input(!transcode);
    let sae = if skip {
        let w_skip = take(&mut map, "W_skip", &weights)?;
        sae.with_skip(w_skip)
            .map_err(|e| super::rename_source(e, &wfile))?
    } else {
        sae
    };
    let hook_name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    let architecture = format!(
        "topk{}{}",
        if skip { "_skip" } else { "" },
        if transcode { "_transcoder" } else { "" }
    );
    Ok(LoadedSae {
        autoencoder: Box::new(sae),
        format: SaeFormat::Sparsify,
        architecture,
        d_in,
        d_sae,
        d_out: d_in,
        layer: hook_name.as_deref().and_then(layer_from_name),
        output_hook_name: if transcode { hook_name.clone() } else { None },
        hook_name,
        norm_scaling_factor: None,
        interchange_dim: None,
        prepend_bos: None,
        weights_path: weights,
    })
}

/// Loads every hookpoint folder under a sparsify checkpoint root (each sub-folder holding
/// `cfg.json` + `sae.safetensors`), sorted by hookpoint name.
pub fn load_sparsify_dir(root: impl AsRef<Path>, opts: &LoadOptions) -> Result<Vec<LoadedSae>> {
    let root = root.as_ref();
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| AutoencoderError::io(root, e))? {
        let p = entry.map_err(|e| AutoencoderError::io(root, e))?.path();
        if p.join("cfg.json").is_file() && p.join("sae.safetensors").is_file() {
            dirs.push(p);
        }
    }
    if dirs.is_empty() {
        return Err(AutoencoderError::UnknownFormat {
            path: root.to_path_buf(),
            message: "no hookpoint folders with cfg.json and sae.safetensors".into(),
        });
    }
    dirs.sort();
    dirs.iter().map(|d| load(d, opts)).collect()
}
