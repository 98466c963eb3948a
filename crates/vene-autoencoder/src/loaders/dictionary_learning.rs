//! dictionary_learning: `ae.pt` (a torch pickle of the state dict), optional `config.json`
//! (`{"trainer": {"dict_class", "activation_dim", "dict_size", "layer", "submodule_name",
//! ...}}`).
//!
//! The dictionary class is `trainer.dict_class` when the config names it, else told from the
//! tensor names:
//!
//! | class | tensors | loaded as |
//! |---|---|---|
//! | `AutoEncoder` | `encoder.weight [L, d]`, `encoder.bias`, `decoder.weight [d, L]`, `bias [d]` | [`crate::AutoencoderLayer`] |
//! | `AutoEncoderTopK` | `encoder.*`, `decoder.weight`, `b_dec`, `k` (and an unused `threshold`) | [`crate::TopKAutoencoder`] (per-row top k) |
//! | `GatedAutoEncoder` | `encoder.weight` (no bias), `gate_bias`, `r_mag`, `mag_bias`, `decoder.weight`, `decoder_bias` | [`crate::GatedAutoencoder`] |
//! | `JumpReluAutoEncoder` | `W_enc [d, L]`, `b_enc`, `W_dec [L, d]`, `b_dec`, `threshold [L]` (no `b_dec` subtraction) | [`crate::JumpReLUAutoencoder`] |
//! | `BatchTopKSAE` | as `AutoEncoderTopK`, with the scalar `threshold` used | [`crate::JumpReLUAutoencoder`] |
//! | `MatryoshkaBatchTopKSAE` | `W_enc [d, L]`, `b_enc`, `W_dec [L, d]`, `b_dec`, `k`, `threshold`, `group_sizes` | [`crate::JumpReLUAutoencoder`] |
//!
//! BatchTopK and Matryoshka SAEs are loaded with their inference semantics (the libraries'
//! `encode` default, `use_threshold=True`): `z = r * (r > threshold)` with
//! `r = relu((x - b_dec) @ W_enc + b_enc)` and one learned scalar threshold, not a top-k over
//! the batch. That equals a JumpReLU (`relu(pre) * (pre > threshold)`) with the scalar on
//! every latent, for any threshold (a negative one, never trained, keeps every positive
//! latent in both). `k` is a training setting and is not used. `AutoEncoderTopK` and
//! `BatchTopKSAE` files hold the same tensors: without a `config.json` naming the class, they
//! load as TopK. A Matryoshka SAE is read with all its groups active (the saved default).
//!
//! dictionary_learning registers `k` as an int32 buffer, which candle's torch pickle reader
//! does not read: a TopK dictionary's `k` then comes from `config.json` (`trainer.k`, which
//! the TopK trainer writes).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};

use super::{
    cfg_str, cfg_usize, dir_and_file, expect_len, layer_from_name, orient_of, read_json,
    scalar_threshold, take, vector_len, LoadOptions, LoadedSae, SaeFormat,
};
use crate::core::Part;
use crate::util::Orient;
use crate::{
    Autoencoder, AutoencoderError, AutoencoderLayer, GatedAutoencoder, JumpReLUAutoencoder, Result,
    TopKAutoencoder,
};

/// The dictionary classes this loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DictClass {
    Standard,
    TopK,
    Gated,
    JumpRelu,
    BatchTopK,
    Matryoshka,
}

const SUPPORTED: &str = "AutoEncoder, AutoEncoderTopK, GatedAutoEncoder, JumpReluAutoEncoder, \
                         BatchTopKSAE, MatryoshkaBatchTopKSAE";

/// The class named in the config, else the one the tensor names say.
fn dict_class(
    named: Option<&str>,
    map: &HashMap<String, Tensor>,
    cfg_file: &Path,
) -> Result<DictClass> {
    let has = |n: &str| map.contains_key(n);
    Ok(match named {
        Some("AutoEncoder") => DictClass::Standard,
        Some("AutoEncoderTopK") => DictClass::TopK,
        Some("GatedAutoEncoder") => DictClass::Gated,
        Some("JumpReluAutoEncoder") => DictClass::JumpRelu,
        Some("BatchTopKSAE") => DictClass::BatchTopK,
        Some("MatryoshkaBatchTopKSAE") => DictClass::Matryoshka,
        Some(other) => {
            return Err(AutoencoderError::Unsupported {
                file: cfg_file.display().to_string(),
                key: "trainer.dict_class".into(),
                value: other.to_string(),
                supported: SUPPORTED,
            })
        }
        None if has("r_mag") && has("gate_bias") => DictClass::Gated,
        None if has("W_enc") && has("group_sizes") => DictClass::Matryoshka,
        None if has("W_enc") && has("threshold") => DictClass::JumpRelu,
        // `k` is an int32 buffer, which candle's pickle reader skips: b_dec tells TopK files
        // from the standard AutoEncoder's (`bias`)
        None if has("b_dec") && has("encoder.weight") => DictClass::TopK,
        None => DictClass::Standard,
    })
}

pub(super) fn load(path: &Path, opts: &LoadOptions) -> Result<LoadedSae> {
    let (dir, file) = dir_and_file(path, "ae.pt");
    let fname = file.display().to_string();
    let mut map = crate::io::read_torch_pickle(&file, &opts.device)?;
    let cfg_path = dir.join("config.json");
    let trainer = if cfg_path.is_file() {
        read_json(&cfg_path)?.get("trainer").cloned()
    } else {
        None
    };
    let class = dict_class(
        trainer.as_ref().and_then(|t| cfg_str(t, "dict_class")),
        &map,
        &cfg_path,
    )?;
    // The names of encoder weight, encoder bias, decoder weight, decoder bias.
    let names = match class {
        DictClass::Standard => ["encoder.weight", "encoder.bias", "decoder.weight", "bias"],
        DictClass::TopK | DictClass::BatchTopK => {
            ["encoder.weight", "encoder.bias", "decoder.weight", "b_dec"]
        }
        DictClass::Gated => [
            "encoder.weight",
            "gate_bias",
            "decoder.weight",
            "decoder_bias",
        ],
        DictClass::Matryoshka | DictClass::JumpRelu => ["W_enc", "b_enc", "W_dec", "b_dec"],
    };
    let w_enc = take(&mut map, names[0], &file)?;
    let b_enc = take(&mut map, names[1], &file)?;
    let w_dec = take(&mut map, names[2], &file)?;
    let bias = take(&mut map, names[3], &file)?;
    let d_in = vector_len(&fname, names[3], &bias)?;
    let d_sae = vector_len(&fname, names[1], &b_enc)?;
    let (mut hook_name, mut layer) = (None, None);
    if let Some(t) = &trainer {
        if let Some(d) = cfg_usize(t, "activation_dim", &cfg_path)? {
            expect_len(&fname, names[3], &bias, d)?;
        }
        if let Some(l) = cfg_usize(t, "dict_size", &cfg_path)? {
            expect_len(&fname, names[1], &b_enc, l)?;
        }
        hook_name = cfg_str(t, "submodule_name").map(str::to_string);
        layer = cfg_usize(t, "layer", &cfg_path)?;
    }
    if layer.is_none() {
        layer = hook_name.as_deref().and_then(layer_from_name);
    }
    // nn.Linear layout, except Matryoshka's plain parameters
    let documented = if matches!(class, DictClass::Matryoshka | DictClass::JumpRelu) {
        Orient::InOut
    } else {
        Orient::OutIn
    };
    let enc_orient = orient_of(&fname, names[0], &w_enc, d_in, d_sae, documented)?;
    let dec_orient = orient_of(&fname, names[2], &w_dec, d_sae, d_in, documented)?;
    let dtype = w_enc.dtype();
    let parts = [
        Part::new(names[0], w_enc),
        Part::new(names[1], b_enc),
        Part::new(names[2], w_dec),
        Part::new(names[3], bias),
    ];
    let (autoencoder, architecture): (Box<dyn Autoencoder>, &str) = match class {
        DictClass::Standard => {
            // AutoencoderLayer holds pyvene's layout: transpose what is stored the other way.
            let fix = |p: Part<'static>, o: Orient| -> Result<Part<'static>> {
                Ok(match o {
                    Orient::OutIn => p,
                    Orient::InOut => Part::new(p.name, p.tensor.t()?.contiguous()?),
                })
            };
            let [ew, eb, dw, db] = parts;
            let parts = [fix(ew, enc_orient)?, eb, fix(dw, dec_orient)?, db];
            (
                Box::new(AutoencoderLayer::from_parts(&fname, parts)?),
                "standard",
            )
        }
        DictClass::TopK => {
            let k = read_k(&mut map, &file, trainer.as_ref(), &cfg_path)?;
            let sae = TopKAutoencoder::from_parts(&fname, parts, enc_orient, dec_orient, k)?;
            (Box::new(sae), "topk")
        }
        DictClass::Gated => {
            let mag = [
                Part::new("r_mag", take(&mut map, "r_mag", &file)?),
                Part::new("mag_bias", take(&mut map, "mag_bias", &file)?),
            ];
            let sae = GatedAutoencoder::from_parts(&fname, parts, mag, enc_orient, dec_orient)?;
            (Box::new(sae), "gated")
        }
        DictClass::JumpRelu => {
            let threshold = Part::new("threshold", take(&mut map, "threshold", &file)?);
            let sae = JumpReLUAutoencoder::from_parts(
                &fname, parts, threshold, enc_orient, dec_orient, None,
            )?;
            (Box::new(sae), "jumprelu")
        }
        DictClass::BatchTopK | DictClass::Matryoshka => {
            if class == DictClass::Matryoshka {
                check_group_sizes(&mut map, &file, d_sae)?;
            }
            let t = take(&mut map, "threshold", &file)?;
            let threshold = scalar_threshold(&fname, "threshold", &t, d_sae, dtype)?;
            let sae = JumpReLUAutoencoder::from_parts(
                &fname,
                parts,
                Part::new("threshold", threshold),
                enc_orient,
                dec_orient,
                None,
            )?
            .with_apply_b_dec_to_input(true);
            let name = match class {
                DictClass::Matryoshka => "matryoshka_batchtopk",
                _ => "batchtopk",
            };
            (Box::new(sae), name)
        }
    };
    Ok(LoadedSae {
        autoencoder,
        format: SaeFormat::DictionaryLearning,
        architecture: architecture.into(),
        d_in,
        d_sae,
        d_out: d_in,
        hook_name,
        output_hook_name: None,
        layer,
        norm_scaling_factor: None,
        interchange_dim: None,
        prepend_bos: None,
        weights_path: file,
    })
}

/// The `k` of a TopK dictionary: its `k` buffer when readable (an int64 one; candle's pickle
/// reader skips the int32 buffer dictionary_learning registers), else `trainer.k` of
/// `config.json`.
fn read_k(
    map: &mut HashMap<String, Tensor>,
    file: &Path,
    trainer: Option<&serde_json::Value>,
    cfg_path: &Path,
) -> Result<usize> {
    let Some(k_t) = map.remove("k") else {
        if let Some(k) = trainer.and_then(|t| cfg_usize(t, "k", cfg_path).transpose()) {
            return k;
        }
        return Err(AutoencoderError::InvalidFile {
            path: file.to_path_buf(),
            message: format!(
                "no readable buffer `k` (an int32 buffer cannot be read) and no `trainer.k` \
                 in {}",
                cfg_path.display()
            ),
        });
    };
    k_t.flatten_all()?
        .to_dtype(DType::I64)?
        .to_vec1::<i64>()?
        .first()
        .copied()
        .and_then(|k| usize::try_from(k).ok())
        .ok_or_else(|| AutoencoderError::InvalidFile {
            path: file.to_path_buf(),
            message: "buffer `k` is empty or negative".into(),
        })
}

/// A Matryoshka SAE's `group_sizes` must be positive and sum to the latent width.
fn check_group_sizes(map: &mut HashMap<String, Tensor>, file: &Path, d_sae: usize) -> Result<()> {
    let sizes = take(map, "group_sizes", file)?
        .flatten_all()?
        .to_dtype(DType::I64)?
        .to_vec1::<i64>()?;
    let total: i64 = sizes.iter().sum();
    if sizes.is_empty() || sizes.iter().any(|&s| s <= 0) || total != d_sae as i64 {
        return Err(AutoencoderError::InvalidFile {
            path: file.to_path_buf(),
            message: format!(
                "buffer `group_sizes` {sizes:?} must be positive and sum to the latent width \
                 {d_sae}"
            ),
        });
    }
    Ok(())
}
