//! dictionary_learning: `ae.pt` (a torch pickle of the state dict), optional `config.json`
//! (`{"trainer": {"activation_dim", "dict_size", "layer", "submodule_name", ...}}`).
//!
//! `AutoEncoder`: `encoder.weight [L, d]`, `encoder.bias [L]`, `decoder.weight [d, L]`,
//! `bias [d]`; `encode = relu(encoder(x - bias))`, `decode = decoder(z) + bias` (an
//! [`crate::AutoencoderLayer`]). `AutoEncoderTopK` (`b_dec` and a `k` buffer instead of `bias`):
//! a [`crate::TopKAutoencoder`].

use std::path::Path;

use candle_core::{DType, Tensor};

use super::{
    cfg_str, cfg_usize, dir_and_file, expect_len, layer_from_name, orient_of, read_json, take,
    vector_len, LoadOptions, LoadedSae, SaeFormat,
};
use crate::core::Part;
use crate::util::Orient;
use crate::{Autoencoder, AutoencoderError, AutoencoderLayer, Result, TopKAutoencoder};

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
    let w_enc = take(&mut map, "encoder.weight", &file)?;
    let b_enc = take(&mut map, "encoder.bias", &file)?;
    let w_dec = take(&mut map, "decoder.weight", &file)?;
    let topk = map.contains_key("k") && map.contains_key("b_dec");
    let (bias_name, bias) = if topk {
        ("b_dec", take(&mut map, "b_dec", &file)?)
    } else {
        ("bias", take(&mut map, "bias", &file)?)
    };
    let d_in = vector_len(&fname, bias_name, &bias)?;
    let d_sae = vector_len(&fname, "encoder.bias", &b_enc)?;
    let (mut hook_name, mut layer) = (None, None);
    if let Some(t) = &trainer {
        if let Some(d) = cfg_usize(t, "activation_dim", &cfg_path)? {
            expect_len(&fname, bias_name, &bias, d)?;
        }
        if let Some(l) = cfg_usize(t, "dict_size", &cfg_path)? {
            expect_len(&fname, "encoder.bias", &b_enc, l)?;
        }
        hook_name = cfg_str(t, "submodule_name").map(str::to_string);
        layer = cfg_usize(t, "layer", &cfg_path)?;
    }
    if layer.is_none() {
        layer = hook_name.as_deref().and_then(layer_from_name);
    }
    let enc_orient = orient_of(&fname, "encoder.weight", &w_enc, d_in, d_sae, Orient::OutIn)?;
    let dec_orient = orient_of(&fname, "decoder.weight", &w_dec, d_sae, d_in, Orient::OutIn)?;
    let (autoencoder, architecture): (Box<dyn Autoencoder>, &str) = if topk {
        let k_t = take(&mut map, "k", &file)?;
        let k = k_t
            .flatten_all()?
            .to_dtype(DType::I64)?
            .to_vec1::<i64>()?
            .first()
            .copied()
            .and_then(|k| usize::try_from(k).ok())
            .ok_or_else(|| AutoencoderError::InvalidFile {
                path: file.clone(),
                message: "buffer `k` is empty or negative".into(),
            })?;
        let sae = TopKAutoencoder::from_parts(
            &fname,
            [
                Part::new("encoder.weight", w_enc),
                Part::new("encoder.bias", b_enc),
                Part::new("decoder.weight", w_dec),
                Part::new("b_dec", bias),
            ],
            enc_orient,
            dec_orient,
            k,
        )?;
        (Box::new(sae), "topk")
    } else {
        // AutoencoderLayer holds pyvene's layout: transpose what is stored the other way.
        let fix = |t: Tensor, o: Orient| -> Result<Tensor> {
            Ok(match o {
                Orient::OutIn => t,
                Orient::InOut => t.t()?.contiguous()?,
            })
        };
        let layer_ae = AutoencoderLayer::from_parts(
            &fname,
            [
                Part::new("encoder.weight", fix(w_enc, enc_orient)?),
                Part::new("encoder.bias", b_enc),
                Part::new("decoder.weight", fix(w_dec, dec_orient)?),
                Part::new("bias", bias),
            ],
        )?;
        (Box::new(layer_ae), "standard")
    };
    Ok(LoadedSae {
        autoencoder,
        format: SaeFormat::DictionaryLearning,
        architecture: architecture.into(),
        d_in,
        d_sae,
        hook_name,
        layer,
        norm_scaling_factor: None,
        interchange_dim: None,
        prepend_bos: None,
        weights_path: file,
    })
}
