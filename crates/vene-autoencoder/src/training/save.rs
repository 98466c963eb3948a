//! Writing a trained SAE in SAELens's layout (`cfg.json` + `sae_weights.safetensors`) and,
//! for TopK, in sparsify's (`cfg.json` + `sae.safetensors`).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Tensor};
use serde::{Deserialize, Serialize};

use super::config::Architecture;
use super::sae::TrainingSae;
use crate::atomic::StagedDir;
use crate::io::safetensors_bytes;
use crate::{AutoencoderError, Result};

/// Where the activations came from, written into `cfg.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SaveMetadata {
    /// The input site's hook name (TransformerLens names, e.g. `blocks.3.hook_resid_post`).
    pub hook_name: String,
    /// A transcoder's output site.
    pub hook_name_out: Option<String>,
    /// The input site's layer.
    pub layer: Option<usize>,
    /// The model's name or path.
    pub model_name: Option<String>,
    /// Whether prompts started with BOS when the activations were collected.
    pub prepend_bos: Option<bool>,
}

fn f32_map(pairs: Vec<(&str, Tensor)>) -> Result<HashMap<String, Tensor>> {
    pairs
        .into_iter()
        .map(|(n, t)| Ok((n.to_string(), t.to_dtype(DType::F32)?.contiguous()?)))
        .collect()
}

/// Writes `files` (name, bytes) into `dir` atomically: all or nothing.
fn write_dir(dir: &Path, files: &[(&str, Vec<u8>)], overwrite: bool) -> Result<()> {
    let staged = StagedDir::new(dir).map_err(|e| AutoencoderError::io(dir, e))?;
    for (name, bytes) in files {
        let p = staged.path().join(name);
        std::fs::write(&p, bytes).map_err(|e| AutoencoderError::io(&p, e))?;
    }
    staged
        .commit(overwrite)
        .map_err(|e| AutoencoderError::io(dir, e))
}

fn json_bytes(v: &serde_json::Value) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(v)
        .map_err(|e| AutoencoderError::InvalidArgument(format!("cfg.json: {e}")))
}

impl TrainingSae {
    /// The architecture name SAELens's inference loader gets: `standard`, `topk`, `jumprelu`
    /// (also for BatchTopK and Matryoshka, as SAELens saves them), `gated`, `transcoder`,
    /// `jumprelu_transcoder`. A TopK transcoder has none (save it with
    /// [`TrainingSae::save_sparsify`]).
    pub fn saelens_architecture(&self) -> Result<&'static str> {
        Ok(match (&self.architecture, self.transcoder) {
            (Architecture::Relu { .. }, false) => "standard",
            (Architecture::Relu { .. }, true) => "transcoder",
            (Architecture::TopK { .. }, false) => "topk",
            (Architecture::Gated { .. }, false) => "gated",
            (
                Architecture::JumpRelu { .. }
                | Architecture::BatchTopK { .. }
                | Architecture::Matryoshka { .. },
                t,
            ) => {
                if t {
                    "jumprelu_transcoder"
                } else {
                    "jumprelu"
                }
            }
            (a, true) => {
                return Err(AutoencoderError::InvalidArgument(format!(
                    "SAELens has no {} transcoder; save a TopK transcoder in sparsify's layout",
                    a.saelens_name()
                )))
            }
        })
    }

    /// Writes the SAE in SAELens's inference layout into the folder `dir` (atomically;
    /// a folder with files is replaced only with `overwrite`): `sae_weights.safetensors` in
    /// f32 (`W_enc [d_in, d_sae]`, `b_enc` (`b_gate`, `r_mag`, `b_mag` for gated),
    /// `W_dec [d_sae, d_out]`, `b_dec`, `threshold` for the JumpReLU kinds) and `cfg.json`
    /// (`architecture`, `d_in`, `d_sae`, `d_out` and `hook_name_out` for transcoders, `k` for
    /// TopK, `apply_b_dec_to_input`, `normalize_activations`, the hook, and under `metadata`
    /// the training architecture and the folded normalisation factor).
    ///
    /// The normalisation factor is folded into the weights, so `normalize_activations` is
    /// `none`, as SAELens sets it when it folds.
    pub fn save_saelens(
        &self,
        dir: impl AsRef<Path>,
        meta: &SaveMetadata,
        overwrite: bool,
    ) -> Result<()> {
        let arch = self.saelens_architecture()?;
        let [w_enc, b_enc, w_dec, b_dec] = self.folded()?;
        let mut tensors = vec![("W_enc", w_enc), ("W_dec", w_dec), ("b_dec", b_dec)];
        match &self.architecture {
            Architecture::Gated { .. } => {
                tensors.push(("b_gate", b_enc));
                if let (Some(r), Some(b)) = (&self.r_mag, &self.b_mag) {
                    tensors.push(("r_mag", r.as_tensor().detach()));
                    tensors.push(("b_mag", b.as_tensor().detach()));
                }
            }
            _ => tensors.push(("b_enc", b_enc)),
        }
        if arch.starts_with("jumprelu") {
            if let Some(t) = self.threshold()? {
                tensors.push(("threshold", t));
            }
        }
        let weights = safetensors_bytes(&f32_map(tensors)?)?;
        let mut cfg = serde_json::json!({
            "architecture": arch,
            "d_in": self.input_dim,
            "d_sae": self.latent_dim,
            "dtype": "float32",
            "device": "cpu",
            "apply_b_dec_to_input": self.apply_b_dec_to_input(),
            "normalize_activations": "none",
            "hook_name": meta.hook_name,
            "metadata": {
                "hook_name": meta.hook_name,
                "training_architecture": self.architecture.saelens_name(),
                "norm_scaling_factor_folded": [self.input_scale, self.output_scale],
            },
        });
        let obj = cfg
            .as_object_mut()
            .ok_or_else(|| AutoencoderError::InvalidArgument("cfg.json is not an object".into()))?;
        let mut put = |key: &str, v: serde_json::Value| {
            obj.insert(key.to_string(), v.clone());
            if let Some(m) = obj.get_mut("metadata").and_then(|m| m.as_object_mut()) {
                m.insert(key.to_string(), v);
            }
        };
        if let Architecture::TopK { k } = self.architecture {
            put("k", k.into());
        }
        if self.transcoder {
            put("d_out", self.output_dim.into());
            if let Some(h) = &meta.hook_name_out {
                put("hook_name_out", h.as_str().into());
            }
        }
        if let Some(l) = meta.layer {
            put("hook_layer", l.into());
        }
        if let Some(m) = &meta.model_name {
            put("model_name", m.as_str().into());
        }
        if let Some(b) = meta.prepend_bos {
            put("prepend_bos", b.into());
        }
        write_dir(
            dir.as_ref(),
            &[
                ("sae_weights.safetensors", weights),
                ("cfg.json", json_bytes(&cfg)?),
            ],
            overwrite,
        )
    }

    /// Writes a TopK SAE in sparsify's layout into the hookpoint folder `dir` (atomically):
    /// `sae.safetensors` (`encoder.weight [d_sae, d_in]`, `encoder.bias`, `W_dec [d_sae, d]`,
    /// `b_dec`) and `cfg.json` (`activation: topk`, `k`, `num_latents`, `d_in`,
    /// `transcode`, `skip_connection: false`). sparsify's transcoders predict a width equal
    /// to their input's: other transcoders are refused.
    pub fn save_sparsify(&self, dir: impl AsRef<Path>, overwrite: bool) -> Result<()> {
        let Architecture::TopK { k } = self.architecture else {
            return Err(AutoencoderError::InvalidArgument(format!(
                "sparsify's layout holds TopK SAEs, not {}",
                self.architecture.saelens_name()
            )));
        };
        if self.input_dim != self.output_dim {
            return Err(AutoencoderError::InvalidArgument(format!(
                "sparsify's transcoders read and write one width; this one reads {} and \
                 writes {}",
                self.input_dim, self.output_dim
            )));
        }
        let [w_enc, b_enc, w_dec, b_dec] = self.folded()?;
        let weights = safetensors_bytes(&f32_map(vec![
            ("encoder.weight", w_enc.t()?),
            ("encoder.bias", b_enc),
            ("W_dec", w_dec),
            ("b_dec", b_dec),
        ])?)?;
        let cfg = serde_json::json!({
            "activation": "topk",
            "k": k,
            "num_latents": self.latent_dim,
            "expansion_factor": (self.latent_dim / self.input_dim).max(1),
            "d_in": self.input_dim,
            "normalize_decoder": true,
            "multi_topk": false,
            "skip_connection": false,
            "transcode": self.transcoder,
        });
        write_dir(
            dir.as_ref(),
            &[
                ("sae.safetensors", weights),
                ("cfg.json", json_bytes(&cfg)?),
            ],
            overwrite,
        )
    }
}
