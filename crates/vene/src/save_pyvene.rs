//! Saving for pyvene: a folder that pyvene's `IntervenableModel.load(dir, model)` rebuilds
//! (`config.json` as pyvene's `IntervenableConfig.save_pretrained` writes it, and one
//! `intkey_<key>.bin` torch pickle per intervention whose state pyvene reads back, with the
//! state-dict names of pyvene's classes).
//!
//! What pyvene can and cannot rebuild is listed in `docs/porting-from-pyvene.md` ("pyvene
//! interop"); what it cannot is an error ([`VeneError::NotForPyvene`]) naming the
//! representation, never a folder pyvene would load wrongly.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};
use vene_interventions::{Intervention, OrthogonalParam};
use vene_models::LanguageModel;

use crate::config::RepresentationConfig;
use crate::save::SaveOptions;
use crate::{IntervenableModel, Result, VeneError};

/// The `transformers_version` written in `config.json` (the version pyvene's fixtures were
/// saved with; `IntervenableConfig.from_pretrained` only records it).
pub const PYVENE_TRANSFORMERS_VERSION: &str = "4.57.6";

/// The name pyvene gives the state file of the intervention with key `key`.
pub fn pyvene_state_file_name(key: &str) -> String {
    format!("intkey_{key}.bin")
}

/// pyvene's `str(type(intervention))` of a built-in class.
fn pyvene_class(type_name: &str) -> String {
    format!("<class 'pyvene.models.interventions.{type_name}'>")
}

/// What one intervention becomes in a pyvene folder.
struct PyveneEntry {
    /// Its 14-element representation list.
    representation: Value,
    /// Its `intervention_dimensions` entry (an int or a list).
    dimension: Value,
    /// Its `intervention_constant_sources` entry.
    constant_source: bool,
    /// The state dict of its `intkey_<key>.bin`, when pyvene reads one.
    state: Option<Vec<(String, Tensor)>>,
}

/// The state-dict tensor `name` of `state`.
fn take<'a>(state: &'a [(String, Tensor)], name: &str) -> Option<&'a Tensor> {
    state.iter().find(|(k, _)| k == name).map(|(_, t)| t)
}

/// An i64 scalar on the CPU.
fn i64_scalar(v: usize) -> Result<Tensor> {
    Ok(Tensor::new(v as i64, &Device::Cpu)?)
}

/// An f32 scalar on the CPU.
fn f32_scalar(v: f64) -> Result<Tensor> {
    Ok(Tensor::new(v as f32, &Device::Cpu)?)
}

/// `interchange_dim` as pyvene holds it: `(tensor, json)`. `prefix`: the type reads it as
/// "the first k dims" (`base[..., :k]`), so a list must be `0..k`.
fn interchange_dim(
    state: &[(String, Tensor)],
    embed_dim: usize,
    prefix: bool,
    not_for: &dyn Fn(String) -> VeneError,
) -> Result<(Tensor, Value)> {
    let Some(t) = take(state, "interchange_dim") else {
        return Ok((i64_scalar(embed_dim)?, json!(embed_dim)));
    };
    let t = t.to_dtype(DType::I64)?.to_device(&Device::Cpu)?;
    if t.rank() == 0 {
        let k = t.to_scalar::<i64>()?;
        return Ok((t, json!(k)));
    }
    let dims = t.flatten_all()?.to_vec1::<i64>()?;
    if !prefix {
        return Ok((t, json!(dims)));
    }
    if dims.iter().enumerate().all(|(i, &d)| d == i as i64) {
        return Ok((i64_scalar(dims.len())?, json!(dims.len())));
    }
    Err(not_for(format!(
        "its default dims {dims:?} are not the first k dims, and pyvene's class swaps \
         `base[..., :interchange_dim]`; pass the dims as subspaces at call time instead"
    )))
}

/// The pyvene state of a rotation whose matrix (`[n, k]`, orthonormal columns) is `r`:
/// `torch.nn.utils.parametrizations.orthogonal` with `original = -I` (`[n, k]`) and `base` an
/// `[n, n]` orthogonal matrix whose first `k` columns are `r`, so that pyvene's weight is
/// `base @ I[:, :k] = r` (the state `right_inverse` leaves after `weight = r`).
fn rotation_state(r: &Tensor) -> Result<Vec<(String, Tensor)>> {
    let (n, k) = r.dims2()?;
    let cols = r
        .to_dtype(DType::F64)?
        .to_device(&Device::Cpu)?
        .to_vec2::<f64>()?;
    let base = crate::torch_orthogonal::complete_orthonormal(&cols, n, k);
    let base = Tensor::from_vec(base, (n, n), &Device::Cpu)?.to_dtype(r.dtype())?;
    let mut neg_id = vec![0f64; n * k];
    for i in 0..k {
        neg_id[i * k + i] = -1.0;
    }
    let original = Tensor::from_vec(neg_id, (n, k), &Device::Cpu)?.to_dtype(r.dtype())?;
    Ok(vec![
        (
            "rotate_layer.parametrizations.weight.original".into(),
            original,
        ),
        ("rotate_layer.parametrizations.weight.0.base".into(), base),
    ])
}

/// The orthonormal rotation vene uses, from its saved `rotate_layer.weight`.
fn rotation_matrix(state: &[(String, Tensor)]) -> Result<Tensor> {
    let w = take(state, "rotate_layer.weight").ok_or_else(|| {
        VeneError::Config("a rotated-space intervention without rotate_layer.weight".into())
    })?;
    Ok(OrthogonalParam::from_tensor(w)?.matrix()?)
}

/// What `iv` (at `repr`, with `constant` its config's constant source) becomes for pyvene.
fn pyvene_entry(
    key: &str,
    repr: &RepresentationConfig,
    iv: &dyn Intervention,
    constant: Option<&Tensor>,
) -> Result<PyveneEntry> {
    let type_name = iv.type_name();
    let not_for = |reason: String| VeneError::NotForPyvene {
        key: key.to_string(),
        type_name: type_name.to_string(),
        reason,
    };
    let hp = iv.hyperparams();
    let state = iv.state_dict()?;
    let d = iv.embed_dim();
    let constant = constant.or_else(|| take(&state, "source_representation"));
    let mut low_rank = repr
        .low_rank_dimension
        .map(Value::from)
        .unwrap_or(Value::Null);
    let mut latent = repr.latent_dim.map(Value::from).unwrap_or(Value::Null);
    let mut constant_source = false;
    let mut real_constant = false;
    let sd = |rest: Vec<(String, Tensor)>, idim: &Tensor| -> Result<Vec<(String, Tensor)>> {
        let mut out = vec![
            ("embed_dim".to_string(), i64_scalar(d)?),
            ("interchange_dim".to_string(), idim.clone()),
        ];
        out.extend(rest);
        Ok(out)
    };
    let temperature = |default: f64| {
        hp.get("temperature")
            .and_then(Value::as_f64)
            .unwrap_or(default)
    };
    let trainable_with_constant = || {
        not_for(
            "it has a constant source, and pyvene's load then reads only the source and \
             leaves the trained weights at their initial values"
                .into(),
        )
    };
    let (dimension, file): (Value, Option<Vec<(String, Tensor)>>) = match type_name {
        "VanillaIntervention" | "AdditionIntervention" | "SubtractionIntervention" => {
            let (_, dim) = interchange_dim(&state, d, true, &not_for)?;
            match constant {
                Some(c) => {
                    constant_source = true;
                    real_constant = true;
                    let c = c.to_device(&Device::Cpu)?;
                    (dim, Some(vec![("source_representation".into(), c)]))
                }
                None => (dim, None),
            }
        }
        "SkipIntervention" => (interchange_dim(&state, d, true, &not_for)?.1, None),
        "ZeroIntervention" => {
            // a constant-source class: pyvene never reads a file for it
            constant_source = true;
            (interchange_dim(&state, d, true, &not_for)?.1, None)
        }
        "CollectIntervention" | "NoiseIntervention" => {
            if type_name == "NoiseIntervention" {
                let pyvene_noise = vene_interventions::NoiseIntervention::new(d)?.state_dict()?;
                for name in ["noise", "noise_level"] {
                    let same = match (take(&state, name), take(&pyvene_noise, name)) {
                        (Some(a), Some(b)) => {
                            a.dims() == b.dims()
                                && a.to_dtype(DType::F64)?
                                    .ne(&b.to_dtype(DType::F64)?)?
                                    .to_dtype(DType::U32)?
                                    .sum_all()?
                                    .to_scalar::<u32>()?
                                    == 0
                        }
                        _ => false,
                    };
                    if !same {
                        return Err(not_for(
                            "pyvene's NoiseIntervention always draws its noise from numpy \
                             RandomState(1) (4 units) at level 0.13462981581687927 and cannot \
                             load another noise or level; only NoiseIntervention::new(d) can \
                             be saved for pyvene"
                                .into(),
                        ));
                    }
                }
            }
            // constant-source classes that pyvene's load gives a file to: it reads
            // `source_representation` from one (which the class then ignores)
            constant_source = true;
            let placeholder = Tensor::zeros(d, DType::F32, &Device::Cpu)?;
            let (_, dim) = interchange_dim(&state, d, true, &not_for)?;
            (
                dim,
                Some(vec![("source_representation".into(), placeholder)]),
            )
        }
        "RotatedSpaceIntervention" | "LowRankRotatedSpaceIntervention" => {
            if constant.is_some() {
                return Err(trainable_with_constant());
            }
            let r = rotation_matrix(&state)?;
            if type_name == "LowRankRotatedSpaceIntervention" {
                low_rank = json!(r.dim(1)?);
            }
            let (t, dim) = interchange_dim(&state, d, true, &not_for)?;
            (dim, Some(sd(rotation_state(&r)?, &t)?))
        }
        "BoundlessRotatedSpaceIntervention" => {
            if constant.is_some() {
                return Err(trainable_with_constant());
            }
            let r = rotation_matrix(&state)?;
            let b = take(&state, "intervention_boundaries")
                .ok_or_else(|| not_for("no intervention_boundaries in its state".into()))?
                .to_device(&Device::Cpu)?
                .reshape(1)?;
            let (t, dim) = interchange_dim(&state, d, true, &not_for)?;
            let mut rest = vec![
                ("intervention_boundaries".to_string(), b),
                ("temperature".to_string(), f32_scalar(temperature(50.0))?),
                (
                    "intervention_population".to_string(),
                    Tensor::arange(0i64, d as i64, &Device::Cpu)?,
                ),
            ];
            rest.extend(rotation_state(&r)?);
            (dim, Some(sd(rest, &t)?))
        }
        "SigmoidMaskRotatedSpaceIntervention" => {
            if constant.is_some() {
                return Err(trainable_with_constant());
            }
            let r = rotation_matrix(&state)?;
            let masks = take(&state, "masks")
                .ok_or_else(|| not_for("no masks in its state".into()))?
                .to_device(&Device::Cpu)?;
            let (t, dim) = interchange_dim(&state, d, true, &not_for)?;
            let mut rest = vec![
                ("masks".to_string(), masks),
                ("temperature".to_string(), f32_scalar(temperature(50.0))?),
            ];
            rest.extend(rotation_state(&r)?);
            (dim, Some(sd(rest, &t)?))
        }
        "SigmoidMaskIntervention" => {
            if constant.is_some() {
                return Err(trainable_with_constant());
            }
            let mask = take(&state, "mask")
                .ok_or_else(|| not_for("no mask in its state".into()))?
                .to_device(&Device::Cpu)?;
            let (t, dim) = interchange_dim(&state, d, true, &not_for)?;
            let rest = vec![
                ("mask".to_string(), mask),
                ("temperature".to_string(), f32_scalar(temperature(0.01))?),
            ];
            (dim, Some(sd(rest, &t)?))
        }
        "AutoencoderIntervention" => {
            if constant.is_some() {
                return Err(trainable_with_constant());
            }
            if hp.get("mode").and_then(Value::as_str) != Some("reconstruction") {
                return Err(not_for(format!(
                    "its mode is {}, and pyvene's class only decodes the edited latent \
                     (mode reconstruction)",
                    hp.get("mode").cloned().unwrap_or(Value::Null)
                )));
            }
            let names = [
                "autoencoder.encoder.0.weight",
                "autoencoder.encoder.0.bias",
                "autoencoder.decoder.0.weight",
                "autoencoder.decoder.0.bias",
            ];
            let plain = hp.get("autoencoder_kind").is_none()
                && state
                    .iter()
                    .filter(|(k, _)| k.starts_with("autoencoder."))
                    .all(|(k, _)| names.contains(&k.as_str()));
            let tensors: Option<Vec<(String, Tensor)>> = names
                .iter()
                .map(|n| take(&state, n).map(|t| (n.to_string(), t.clone())))
                .collect();
            let tensors = match tensors {
                Some(t) if plain => t,
                _ => {
                    return Err(not_for(format!(
                        "its autoencoder is a {} SAE, and pyvene's AutoencoderIntervention \
                         holds only its own ReLU AutoencoderLayer (encoder.0/decoder.0); \
                         use JumpReLUAutoencoderIntervention for a JumpReLU SAE, or vene's \
                         own save",
                        hp.get("autoencoder_kind")
                            .and_then(Value::as_str)
                            .unwrap_or("custom")
                    )))
                }
            };
            latent = json!(tensors[0].1.dim(0)?);
            let (t, dim) = interchange_dim(&state, d, false, &not_for)?;
            (dim, Some(sd(tensors, &t)?))
        }
        "JumpReLUAutoencoderIntervention" => {
            if constant.is_some() {
                return Err(trainable_with_constant());
            }
            if hp.get("mode").and_then(Value::as_str) != Some("reconstruction") {
                return Err(not_for(
                    "its mode is not reconstruction, the only one pyvene's class has".into(),
                ));
            }
            let mut rest = Vec::new();
            for n in ["W_enc", "W_dec", "threshold", "b_enc", "b_dec"] {
                let t = take(&state, n)
                    .ok_or_else(|| not_for(format!("no {n} in its state")))?
                    .to_device(&Device::Cpu)?;
                rest.push((n.to_string(), t));
            }
            low_rank = json!(rest[0].1.dim(1)?);
            let (t, dim) = interchange_dim(&state, d, true, &not_for)?;
            (dim, Some(sd(rest, &t)?))
        }
        other => {
            return Err(not_for(format!(
                "pyvene has no class {other}; save it with IntervenableModel::save instead"
            )))
        }
    };
    let representation = json!([
        repr.layer,
        repr.component.as_str(),
        repr.unit.as_str(),
        repr.max_number_of_units,
        low_rank,
        Value::Null,
        Value::Null,
        repr.subspace_partition,
        repr.group_key,
        repr.intervention_link_key,
        Value::Null,
        Value::Null,
        // pyvene's save marks a representation whose config gave a constant source
        if real_constant {
            Value::Bool(true)
        } else {
            Value::Null
        },
        latent,
    ]);
    Ok(PyveneEntry {
        representation,
        dimension,
        constant_source,
        state: file,
    })
}

impl<M: LanguageModel> IntervenableModel<M> {
    /// Saves a folder that pyvene's `IntervenableModel.load(dir, model)` rebuilds on the same
    /// HuggingFace model: `config.json` with pyvene's keys (`representations` as 14-element
    /// lists, `intervention_types` as class strings, `intervention_dimensions`,
    /// `intervention_constant_sources`, `sorted_keys`, `mode`) and `intkey_<key>.bin` torch
    /// pickles with the state-dict names of pyvene's classes (rotations as
    /// `rotate_layer.parametrizations.weight.{original,0.base}`).
    ///
    /// Interventions pyvene cannot rebuild (types it lacks, autoencoders other than its
    /// `AutoencoderLayer`, non-prefix default dims on types that swap a prefix, custom noise,
    /// trainable interventions with a constant source, error-preserving modes) are an error
    /// ([`VeneError::NotForPyvene`]) and nothing is written. The folder is written atomically
    /// (as [`Self::save_with`]; [`SaveOptions::overwrite`] replaces an earlier save). vene's
    /// own [`Self::load`] reads it back too.
    pub fn save_for_pyvene(&self, dir: impl AsRef<Path>, opts: &SaveOptions) -> Result<()> {
        let dir = dir.as_ref();
        crate::save::check_save_target(dir, opts)?;
        let mut reprs = Vec::with_capacity(self.slots.len());
        let mut types = Vec::with_capacity(self.slots.len());
        let mut dims = Vec::with_capacity(self.slots.len());
        let mut constants = Vec::with_capacity(self.slots.len());
        let mut keys = Vec::with_capacity(self.slots.len());
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut collisions: HashMap<String, usize> = HashMap::new();
        for (slot, repr) in self.slots.iter().zip(&self.config.representations) {
            let iv = slot.intervention.as_ref();
            let entry = pyvene_entry(&slot.key, repr, iv, slot.constant_source.as_ref())?;
            // pyvene recomputes each key from the representation it loads
            let proposal = repr.key_proposal();
            let n = collisions.entry(proposal.clone()).or_insert(0);
            let key = format!("{proposal}#{n}");
            *n += 1;
            if let Some(state) = &entry.state {
                let name = pyvene_state_file_name(&key);
                let bytes = vene_autoencoder::torch_pickle_bytes(state).map_err(|e| {
                    VeneError::SavedFile {
                        path: dir.join(&name).display().to_string(),
                        reason: e.to_string(),
                    }
                })?;
                files.push((name, bytes));
            }
            reprs.push(entry.representation);
            types.push(Value::from(pyvene_class(iv.type_name())));
            dims.push(entry.dimension);
            constants.push(Value::Bool(entry.constant_source));
            keys.push(Value::from(key));
        }
        let mode = match self.config.mode {
            crate::Mode::Serial => "serial",
            crate::Mode::Parallel => "parallel",
        };
        let config = json!({
            "intervention_constant_sources": constants,
            "intervention_dimensions": dims,
            "intervention_types": types,
            "mode": mode,
            "representations": reprs,
            "sorted_keys": keys,
            "transformers_version": PYVENE_TRANSFORMERS_VERSION,
        });
        let text = serde_json::to_string_pretty(&config).map_err(|source| VeneError::Json {
            what: dir.join("config.json").display().to_string(),
            source,
        })?;
        files.push(("config.json".into(), format!("{text}\n").into_bytes()));
        crate::save::write_folder(dir, &files, opts.overwrite)
    }
}
