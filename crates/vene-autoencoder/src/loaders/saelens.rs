//! SAELens: `cfg.json` + `sae_weights.safetensors`.
//!
//! Architectures: `standard` ([`crate::ReluAutoencoder`]), `jumprelu`
//! ([`crate::JumpReLUAutoencoder`]; `threshold`, or `log_threshold` as saved during training),
//! `topk` ([`crate::TopKAutoencoder`], `k` from the config). `apply_b_dec_to_input` is honoured.
//!
//! `normalize_activations`: `none`; `expected_average_only_in`, where SAELens's inference SAE
//! applies no runtime scaling and instead folds a norm scaling factor `s` into the weights
//! (`W_enc *= s`, `W_dec /= s`, `b_dec /= s`, SAELens `fold_activation_norm_scaling_factor`)
//! when it knows one: this loader does the same with the factor from [`LoadOptions`],
//! `activation_scaler.json` or `cfg.json`'s `norm_scaling_factor`. `constant_norm_rescale` and
//! `layer_norm` keep per-input state between encode and decode and are refused.

use std::path::Path;

use super::{
    cfg_str, cfg_usize, dir_and_file, expect_len, layer_from_name, orient_of, read_json, take,
    LoadOptions, LoadedSae, SaeFormat,
};
use crate::core::{saelens_parts, Part};
use crate::io::read_safetensors;
use crate::util::Orient;
use crate::{
    Autoencoder, AutoencoderError, JumpReLUAutoencoder, ReluAutoencoder, Result, TopKAutoencoder,
};

/// The factor to fold for `expected_average_only_in`, if one is known.
fn scaling_factor(dir: &Path, cfg: &serde_json::Value, opts: &LoadOptions) -> Result<Option<f64>> {
    if let Some(s) = opts.norm_scaling_factor {
        return Ok(Some(s));
    }
    let scaler = dir.join("activation_scaler.json");
    if scaler.is_file() {
        let v = read_json(&scaler)?;
        if let Some(s) = v.get("scaling_factor").and_then(|s| s.as_f64()) {
            return Ok(Some(s));
        }
    }
    Ok(cfg.get("norm_scaling_factor").and_then(|s| s.as_f64()))
}

pub(super) fn load(path: &Path, opts: &LoadOptions) -> Result<LoadedSae> {
    let (dir, weights) = dir_and_file(path, "sae_weights.safetensors");
    let cfg_path = dir.join("cfg.json");
    let cfg = read_json(&cfg_path)?;
    let cfg_file = cfg_path.display().to_string();
    let wfile = weights.display().to_string();
    let required = |key: &str| -> Result<usize> {
        cfg_usize(&cfg, key, &cfg_path)?.ok_or_else(|| AutoencoderError::InvalidConfig {
            file: cfg_file.clone(),
            key: key.to_string(),
            message: "missing".into(),
        })
    };
    let d_in = required("d_in")?;
    let d_sae = required("d_sae")?;
    let architecture = cfg_str(&cfg, "architecture")
        .unwrap_or("standard")
        .to_string();
    let apply_b_dec = cfg
        .get("apply_b_dec_to_input")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let norm = cfg_str(&cfg, "normalize_activations").unwrap_or("none");
    let meta = cfg.get("metadata").or_else(|| cfg.get("meta"));
    let hook_name = meta
        .and_then(|m| cfg_str(m, "hook_name"))
        .or_else(|| cfg_str(&cfg, "hook_name"))
        .map(str::to_string);
    let layer = match meta
        .and_then(|m| m.get("hook_layer"))
        .or_else(|| cfg.get("hook_layer"))
    {
        Some(v) => v.as_u64().and_then(|n| usize::try_from(n).ok()),
        None => None,
    }
    .or_else(|| hook_name.as_deref().and_then(layer_from_name));
    let prepend_bos = meta
        .and_then(|m| m.get("prepend_bos"))
        .or_else(|| cfg.get("prepend_bos"))
        .and_then(|v| v.as_bool());

    let mut map = read_safetensors(&weights, &opts.device)?;
    let w_enc = take(&mut map, "W_enc", &weights)?;
    let b_enc = take(&mut map, "b_enc", &weights)?;
    let w_dec = take(&mut map, "W_dec", &weights)?;
    let mut b_dec = take(&mut map, "b_dec", &weights)?;
    expect_len(&wfile, "b_enc", &b_enc, d_sae)?;
    expect_len(&wfile, "b_dec", &b_dec, d_in)?;
    let enc_orient = orient_of(&wfile, "W_enc", &w_enc, d_in, d_sae, Orient::InOut)?;
    let dec_orient = orient_of(&wfile, "W_dec", &w_dec, d_sae, d_in, Orient::InOut)?;
    if let Some(sf) = map.get("scaling_factor") {
        // SAELens's finetuning scaling factor: only all-ones (a no-op) is supported.
        let dev = (sf - 1.0)?
            .abs()?
            .max_all()?
            .to_dtype(candle_core::DType::F64)?;
        if dev.to_scalar::<f64>()? != 0.0 {
            return Err(AutoencoderError::Unsupported {
                file: wfile,
                key: "tensor".into(),
                value: "scaling_factor (finetuning scaling) other than ones".into(),
                supported: "a scaling_factor of all ones",
            });
        }
    }

    let (mut w_enc, mut w_dec) = (w_enc, w_dec);
    let mut folded = None;
    match norm {
        "none" => {}
        "expected_average_only_in" => {
            if let Some(s) = scaling_factor(&dir, &cfg, opts)? {
                if !(s.is_finite() && s > 0.0) {
                    return Err(AutoencoderError::InvalidArgument(format!(
                        "norm scaling factor must be finite and positive, got {s}"
                    )));
                }
                w_enc = w_enc.affine(s, 0.0)?;
                w_dec = w_dec.affine(1.0 / s, 0.0)?;
                b_dec = b_dec.affine(1.0 / s, 0.0)?;
                folded = Some(s);
            }
        }
        other => {
            return Err(AutoencoderError::Unsupported {
                file: cfg_file,
                key: "normalize_activations".into(),
                value: other.to_string(),
                supported: "none, expected_average_only_in",
            })
        }
    }
    let parts4 = saelens_parts(w_enc, b_enc, w_dec, b_dec);
    let autoencoder: Box<dyn Autoencoder> = match architecture.as_str() {
        "standard" => Box::new(
            ReluAutoencoder::from_parts(&wfile, parts4, enc_orient, dec_orient)?
                .with_apply_b_dec_to_input(apply_b_dec),
        ),
        "jumprelu" => {
            let threshold = match map.remove("threshold") {
                Some(t) => t,
                None => match map.remove("log_threshold") {
                    Some(t) => t.exp()?,
                    None => {
                        return Err(AutoencoderError::MissingTensor {
                            file: wfile,
                            tensor: "threshold".into(),
                        })
                    }
                },
            };
            Box::new(
                JumpReLUAutoencoder::from_parts(
                    &wfile,
                    parts4,
                    Part::new("threshold", threshold),
                    enc_orient,
                    dec_orient,
                )?
                .with_apply_b_dec_to_input(apply_b_dec),
            )
        }
        "topk" => {
            let k = required("k")?;
            Box::new(
                TopKAutoencoder::from_parts(&wfile, parts4, enc_orient, dec_orient, k)?
                    .with_apply_b_dec_to_input(apply_b_dec),
            )
        }
        other => {
            return Err(AutoencoderError::Unsupported {
                file: cfg_file,
                key: "architecture".into(),
                value: other.to_string(),
                supported: "standard, jumprelu, topk",
            })
        }
    };
    Ok(LoadedSae {
        autoencoder,
        format: SaeFormat::SaeLens,
        architecture,
        d_in,
        d_sae,
        hook_name,
        layer,
        norm_scaling_factor: folded,
        interchange_dim: None,
        prepend_bos,
        weights_path: weights,
    })
}
