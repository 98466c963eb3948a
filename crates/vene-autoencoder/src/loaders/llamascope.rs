//! Llama Scope (OpenMOSS `lm-saes`, hub repos `fnlp/Llama3_1-8B-Base-LX{R,M,A}-{8,32}x`): a
//! folder per SAE with `hyperparams.json` and `checkpoints/final.safetensors`.
//!
//! `hyperparams.json`: `d_model`, `d_sae` (or `expansion_factor`), `hook_point_in`,
//! `hook_point_out`, `act_fn` (`jumprelu`), `jump_relu_threshold` (one scalar for every
//! latent), `norm_activation` (`dataset-wise`, with `dataset_average_activation_norm`
//! `{"in": a, "out": b}`; or `inference` / `none`), `sparsity_include_decoder_norm`,
//! `apply_decoder_bias_to_pre_encoder`. Weights, torch `nn.Linear` layout:
//! `encoder.weight [L, d]`, `encoder.bias [L]`, `decoder.weight [d, L]`, `decoder.bias [d]`.
//!
//! What the SAE computes (`s_in = sqrt(d) / a`, `s_out = sqrt(d) / b`, `n_j` the norm of
//! latent `j`'s decoder column):
//!
//! - `x' = s_in x`, minus `decoder.bias` when `apply_decoder_bias_to_pre_encoder`;
//! - `pre = encoder(x')`; latent `j` fires when `pre_j * n_j > threshold`
//!   (`sparsity_include_decoder_norm`, else `pre_j > threshold`), and is then `pre_j`;
//! - `x_hat = decoder(z) / s_out`.
//!
//! The loader folds all of it into a [`JumpReLUAutoencoder`] that reads raw activations:
//! `W_enc = s_in encoder.weight`, `b_enc = encoder.bias - encoder.weight @ decoder.bias` (when
//! the bias is applied before the encoder), per-latent `threshold_j = threshold / n_j` (or
//! `threshold`), `W_dec = decoder.weight / s_out`, `b_dec = decoder.bias / s_out`. The math is
//! done in f32 and the weights kept in the file's dtype. The factor `s_in` is reported as
//! [`LoadedSae::norm_scaling_factor`].
//!
//! `token-wise` normalisation (a per-input factor) and other activations are refused.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};

use super::{
    cfg_str, cfg_usize, expect_len, layer_from_name, read_json, take, LoadOptions, LoadedSae,
    SaeFormat,
};
use crate::core::{saelens_parts, Part};
use crate::io::read_safetensors;
use crate::util::Orient;
use crate::{AutoencoderError, JumpReLUAutoencoder, Result};

/// The config file of a Llama Scope folder.
pub(super) const HYPERPARAMS: &str = "hyperparams.json";
/// The weights of a Llama Scope folder, relative to it.
pub(super) const WEIGHTS: &str = "checkpoints/final.safetensors";

/// The SAE folder of `path`: the folder itself, or the folder above `checkpoints/` for the
/// weights file.
fn sae_dir(path: &Path) -> PathBuf {
    if path.is_dir() {
        return path.to_path_buf();
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    match parent.file_name() {
        Some(n) if n == "checkpoints" => parent.parent().unwrap_or(Path::new(".")).to_path_buf(),
        _ => parent.to_path_buf(),
    }
}

/// Whether `path` (a folder, or its weights file) holds a Llama Scope SAE.
pub(super) fn is_llama_scope(path: &Path) -> bool {
    let dir = sae_dir(path);
    dir.join(HYPERPARAMS).is_file() && dir.join(WEIGHTS).is_file()
}

/// A positive, finite config number.
fn positive(cfg: &serde_json::Value, key: &str, file: &str) -> Result<f64> {
    let bad = |message: String| AutoencoderError::InvalidConfig {
        file: file.to_string(),
        key: key.to_string(),
        message,
    };
    let path: Vec<&str> = key.split('.').collect();
    let mut v = cfg;
    for p in &path {
        v = v.get(p).ok_or_else(|| bad("missing".into()))?;
    }
    let x = v
        .as_f64()
        .ok_or_else(|| bad(format!("expected a number, got {v}")))?;
    if x.is_finite() && x > 0.0 {
        Ok(x)
    } else {
        Err(bad(format!("expected a finite positive number, got {x}")))
    }
}

pub(super) fn load(path: &Path, opts: &LoadOptions) -> Result<LoadedSae> {
    let dir = sae_dir(path);
    let cfg_path = dir.join(HYPERPARAMS);
    let weights = if path.is_file() {
        path.to_path_buf()
    } else {
        dir.join(WEIGHTS)
    };
    let cfg = read_json(&cfg_path)?;
    let cfg_file = cfg_path.display().to_string();
    let wfile = weights.display().to_string();
    let invalid = |key: &str, message: String| AutoencoderError::InvalidConfig {
        file: cfg_file.clone(),
        key: key.to_string(),
        message,
    };
    let d_in = cfg_usize(&cfg, "d_model", &cfg_path)?
        .ok_or_else(|| invalid("d_model", "missing".into()))?;
    let d_sae = match cfg_usize(&cfg, "d_sae", &cfg_path)? {
        Some(l) => l,
        None => {
            let e = cfg_usize(&cfg, "expansion_factor", &cfg_path)?
                .ok_or_else(|| invalid("d_sae", "missing (and no expansion_factor)".into()))?;
            d_in.checked_mul(e).ok_or_else(|| {
                invalid(
                    "expansion_factor",
                    format!("d_model {d_in} times {e} overflows"),
                )
            })?
        }
    };
    let act_fn = cfg_str(&cfg, "act_fn").unwrap_or("jumprelu");
    if act_fn != "jumprelu" {
        return Err(AutoencoderError::Unsupported {
            file: cfg_file,
            key: "act_fn".into(),
            value: act_fn.to_string(),
            supported: "jumprelu",
        });
    }
    let threshold = match cfg.get("jump_relu_threshold") {
        Some(v) => v
            .as_f64()
            .filter(|t| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| {
                invalid(
                    "jump_relu_threshold",
                    format!("expected a finite number >= 0, got {v}"),
                )
            })?,
        None => return Err(invalid("jump_relu_threshold", "missing".into())),
    };
    let sqrt_d = (d_in as f64).sqrt();
    let (s_in, s_out) = match cfg_str(&cfg, "norm_activation").unwrap_or("dataset-wise") {
        "dataset-wise" => (
            sqrt_d / positive(&cfg, "dataset_average_activation_norm.in", &cfg_file)?,
            sqrt_d / positive(&cfg, "dataset_average_activation_norm.out", &cfg_file)?,
        ),
        "inference" | "none" => (1.0, 1.0),
        other => {
            return Err(AutoencoderError::Unsupported {
                file: cfg_file,
                key: "norm_activation".into(),
                value: other.to_string(),
                supported: "dataset-wise, inference, none",
            })
        }
    };
    let flag = |key: &str, default: bool| cfg.get(key).and_then(|v| v.as_bool()).unwrap_or(default);
    let include_decoder_norm = flag("sparsity_include_decoder_norm", true);
    let bias_before_encoder = flag("apply_decoder_bias_to_pre_encoder", false);
    let hook_name = cfg_str(&cfg, "hook_point_in").map(str::to_string);
    if let (Some(i), Some(o)) = (hook_name.as_deref(), cfg_str(&cfg, "hook_point_out")) {
        if i != o {
            return Err(AutoencoderError::Unsupported {
                file: cfg_file,
                key: "hook_point_out".into(),
                value: format!("{o} (a transcoder: hook_point_in is {i})"),
                supported: "the same hook point as hook_point_in (an SAE)",
            });
        }
    }

    let mut map = read_safetensors(&weights, &opts.device)?;
    let w_enc = take(&mut map, "encoder.weight", &weights)?;
    let b_enc = take(&mut map, "encoder.bias", &weights)?;
    let w_dec = take(&mut map, "decoder.weight", &weights)?;
    let b_dec = take(&mut map, "decoder.bias", &weights)?;
    expect_len(&wfile, "encoder.bias", &b_enc, d_sae)?;
    expect_len(&wfile, "decoder.bias", &b_dec, d_in)?;
    for (name, t, want) in [
        ("encoder.weight", &w_enc, [d_sae, d_in]),
        ("decoder.weight", &w_dec, [d_in, d_sae]),
    ] {
        if t.dims() != want {
            return Err(AutoencoderError::ShapeMismatch {
                file: wfile.clone(),
                tensor: name.into(),
                expected: format!("{want:?}"),
                got: t.dims().to_vec(),
            });
        }
    }
    let dtype = w_enc.dtype();
    let f32 = |t: &Tensor| t.to_dtype(DType::F32);
    let (we, be, wd, bd) = (f32(&w_enc)?, f32(&b_enc)?, f32(&w_dec)?, f32(&b_dec)?);
    let b_enc_folded = if bias_before_encoder {
        // encoder(s x - b) = s W x + (b_enc - W b)
        (&be - we.matmul(&bd.unsqueeze(1)?)?.squeeze(1)?)?
    } else {
        be
    };
    let thresholds = if include_decoder_norm {
        let norms = wd.sqr()?.sum(0)?.sqrt()?.to_vec1::<f32>()?;
        let t: Vec<f32> = norms
            .iter()
            .map(|&n| {
                let v = threshold / f64::from(n);
                // A latent with a zero decoder column writes nothing: it never fires.
                if v.is_finite() {
                    v as f32
                } else {
                    f32::MAX
                }
            })
            .collect();
        Tensor::from_vec(t, d_sae, &opts.device)?
    } else {
        Tensor::full(threshold as f32, d_sae, &opts.device)?
    };
    let back = |t: Tensor| t.to_dtype(dtype);
    let sae = JumpReLUAutoencoder::from_parts(
        &wfile,
        saelens_parts(
            back(we.affine(s_in, 0.0)?)?,
            back(b_enc_folded)?,
            back(wd.affine(1.0 / s_out, 0.0)?)?,
            back(bd.affine(1.0 / s_out, 0.0)?)?,
        ),
        Part::new("threshold", back(thresholds)?),
        Orient::OutIn,
        Orient::OutIn,
        Some(d_in),
    )?;
    Ok(LoadedSae {
        autoencoder: Box::new(sae),
        format: SaeFormat::LlamaScope,
        architecture: "jumprelu".into(),
        d_in,
        d_out: d_in,
        d_sae,
        output_hook_name: None,
        layer: hook_name
            .as_deref()
            .and_then(layer_from_name)
            .or_else(|| layer_from_name(&dir.to_string_lossy())),
        hook_name,
        norm_scaling_factor: (s_in != 1.0).then_some(s_in),
        interchange_dim: None,
        prepend_bos: None,
        weights_path: weights,
    })
}
