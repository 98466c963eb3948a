//! SAELens: `cfg.json` + `sae_weights.safetensors`.
//!
//! Architectures: `standard` ([`crate::ReluAutoencoder`]), `jumprelu`
//! ([`crate::JumpReLUAutoencoder`]; `threshold`, or `log_threshold` as saved during training),
//! `topk` ([`crate::TopKAutoencoder`], `k` from the config), `gated`
//! ([`crate::GatedAutoencoder`]: `W_enc`, `b_gate`, `r_mag`, `b_mag`, `W_dec`, `b_dec`),
//! `batchtopk` / `matryoshka_batchtopk` (training configs: SAELens saves these for inference
//! as `jumprelu` with a constant `threshold`; a training checkpoint's scalar `topk_threshold`
//! is read the same way, as a JumpReLU with that threshold on every latent), and the
//! transcoders `transcoder`, `skip_transcoder` (plus `W_skip [d_out, d_in]`) and
//! `jumprelu_transcoder`, which read `hook_name` and predict `hook_name_out` (width `d_out`;
//! `b_dec` is never subtracted from their input). `apply_b_dec_to_input` is honoured.
//!
//! `normalize_activations`: `none`; `expected_average_only_in`, where SAELens's inference SAE
//! applies no runtime scaling and instead folds a norm scaling factor `s` into the weights
//! (`W_enc *= s`, `W_dec /= s`, `b_dec /= s`, SAELens `fold_activation_norm_scaling_factor`)
//! when it knows one: this loader does the same with the factor from [`LoadOptions`],
//! `activation_scaler.json` or `cfg.json`'s `norm_scaling_factor`; `layer_norm` and
//! `constant_norm_rescale` normalise each input at run time and un-normalise its
//! reconstruction with the same statistics ([`crate::InputNormalization`],
//! [`crate::Autoencoder::decode_for`]). SAELens's transcoders normalise their input but not
//! their output (another site's): that combination is refused.

use std::path::Path;

use super::{
    cfg_str, cfg_usize, dir_and_file, expect_len, layer_from_name, orient_of, read_json, take,
    LoadOptions, LoadedSae, SaeFormat,
};
use crate::core::{saelens_parts, Part};
use crate::io::read_safetensors;
use crate::util::Orient;
use crate::{
    Autoencoder, AutoencoderError, GatedAutoencoder, InputNormalization, JumpReLUAutoencoder,
    ReluAutoencoder, Result, TopKAutoencoder,
};

/// The architectures this loader knows.
const SUPPORTED: &str = "standard, jumprelu, topk, gated, batchtopk, matryoshka_batchtopk, \
                         transcoder, skip_transcoder, jumprelu_transcoder";

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
    let arch = architecture.as_str();
    if !SUPPORTED.split(", ").any(|a| a.trim() == arch) {
        return Err(AutoencoderError::Unsupported {
            file: cfg_file,
            key: "architecture".into(),
            value: architecture,
            supported: SUPPORTED,
        });
    }
    if cfg
        .get("rescale_acts_by_decoder_norm")
        .and_then(|v| v.as_bool())
        == Some(true)
    {
        // a TopK SAE that ranks latents by their decoder norm: not implemented, and loading
        // it as plain TopK would pick other latents silently
        return Err(AutoencoderError::Unsupported {
            file: cfg_file,
            key: "rescale_acts_by_decoder_norm".into(),
            value: "true".into(),
            supported: "false",
        });
    }
    let transcoder = arch.ends_with("transcoder");
    let d_out = if transcoder {
        cfg_usize(&cfg, "d_out", &cfg_path)?.unwrap_or(d_in)
    } else {
        d_in
    };
    let apply_b_dec = match cfg.get("apply_b_dec_to_input").and_then(|v| v.as_bool()) {
        Some(true) if transcoder => {
            return Err(AutoencoderError::InvalidConfig {
                file: cfg_file,
                key: "apply_b_dec_to_input".into(),
                message: format!(
                    "true is not possible for a {arch} (its b_dec has the output's width; \
                     SAELens refuses it too)"
                ),
            })
        }
        Some(on) => on,
        None => !transcoder,
    };
    let norm = cfg_str(&cfg, "normalize_activations").unwrap_or("none");
    let meta = cfg.get("metadata").or_else(|| cfg.get("meta"));
    let meta_str = |key: &str| {
        meta.and_then(|m| cfg_str(m, key))
            .or_else(|| cfg_str(&cfg, key))
            .map(str::to_string)
    };
    let hook_name = meta_str("hook_name");
    let output_hook_name = if transcoder {
        meta_str("hook_name_out")
    } else {
        None
    };
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
    let b_enc_name = if arch == "gated" { "b_gate" } else { "b_enc" };
    let w_enc = take(&mut map, "W_enc", &weights)?;
    let b_enc = take(&mut map, b_enc_name, &weights)?;
    let w_dec = take(&mut map, "W_dec", &weights)?;
    let mut b_dec = take(&mut map, "b_dec", &weights)?;
    expect_len(&wfile, b_enc_name, &b_enc, d_sae)?;
    expect_len(&wfile, "b_dec", &b_dec, d_out)?;
    let enc_orient = orient_of(&wfile, "W_enc", &w_enc, d_in, d_sae, Orient::InOut)?;
    let dec_orient = orient_of(&wfile, "W_dec", &w_dec, d_sae, d_out, Orient::InOut)?;
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
    let mut run_time_norm = InputNormalization::None;
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
        "layer_norm" | "constant_norm_rescale" if transcoder => {
            return Err(AutoencoderError::Unsupported {
                file: cfg_file,
                key: "normalize_activations".into(),
                value: format!("{norm} (for a {arch})"),
                supported: "none, expected_average_only_in (a transcoder's output is \
                            another site's: it cannot be un-normalised with its input's \
                            statistics)",
            })
        }
        other => {
            run_time_norm = InputNormalization::from_saelens_name(other).ok_or_else(|| {
                AutoencoderError::Unsupported {
                    file: cfg_file.clone(),
                    key: "normalize_activations".into(),
                    value: other.to_string(),
                    supported: "none, expected_average_only_in, layer_norm, \
                                constant_norm_rescale",
                }
            })?;
        }
    }
    let w_skip = if arch == "skip_transcoder" {
        Some(take(&mut map, "W_skip", &weights)?)
    } else {
        None
    };
    let input_dim = transcoder.then_some(d_in);
    let wdtype = w_enc.dtype();
    let mut parts4 = saelens_parts(w_enc, b_enc, w_dec, b_dec);
    parts4[1].name = b_enc_name;
    // Every type gets the run-time normalisation, the skip connection and the b_dec setting.
    macro_rules! finish {
        ($sae:expr) => {{
            let mut sae = $sae
                .with_input_normalization(run_time_norm)
                .with_apply_b_dec_to_input(apply_b_dec);
            if let Some(w) = w_skip {
                sae = sae
                    .with_skip(w)
                    .map_err(|e| super::rename_source(e, &wfile))?;
            }
            Box::new(sae)
        }};
    }
    let autoencoder: Box<dyn Autoencoder> = match arch {
        "standard" | "transcoder" | "skip_transcoder" => finish!(ReluAutoencoder::from_parts(
            &wfile, parts4, enc_orient, dec_orient, input_dim
        )?),
        "jumprelu" | "jumprelu_transcoder" | "batchtopk" | "matryoshka_batchtopk" => {
            let threshold = jumprelu_threshold(&mut map, &wfile, d_sae, wdtype)?;
            finish!(JumpReLUAutoencoder::from_parts(
                &wfile,
                parts4,
                Part::new("threshold", threshold),
                enc_orient,
                dec_orient,
                input_dim,
            )?)
        }
        "topk" => {
            let k = required("k")?;
            finish!(TopKAutoencoder::from_parts(
                &wfile, parts4, enc_orient, dec_orient, k
            )?)
        }
        _ => {
            // "gated", the one architecture left of SUPPORTED
            let mag = [
                Part::new("r_mag", take(&mut map, "r_mag", &weights)?),
                Part::new("b_mag", take(&mut map, "b_mag", &weights)?),
            ];
            finish!(GatedAutoencoder::from_parts(
                &wfile, parts4, mag, enc_orient, dec_orient
            )?)
        }
    };
    Ok(LoadedSae {
        autoencoder,
        format: SaeFormat::SaeLens,
        architecture,
        d_in,
        d_sae,
        d_out,
        hook_name,
        output_hook_name,
        layer,
        norm_scaling_factor: folded,
        interchange_dim: None,
        prepend_bos,
        weights_path: weights,
    })
}

/// The JumpReLU threshold `[d_sae]`: `threshold`, `exp(log_threshold)` (saved during
/// training), or a scalar `topk_threshold` (a BatchTopK training checkpoint) on every latent.
fn jumprelu_threshold(
    map: &mut std::collections::HashMap<String, candle_core::Tensor>,
    wfile: &str,
    d_sae: usize,
    dtype: candle_core::DType,
) -> Result<candle_core::Tensor> {
    if let Some(t) = map.remove("threshold") {
        return Ok(t);
    }
    if let Some(t) = map.remove("log_threshold") {
        return Ok(t.exp()?);
    }
    if let Some(t) = map.remove("topk_threshold") {
        return super::scalar_threshold(wfile, "topk_threshold", &t, d_sae, dtype);
    }
    Err(AutoencoderError::MissingTensor {
        file: wfile.to_string(),
        tensor: "threshold".into(),
    })
}
