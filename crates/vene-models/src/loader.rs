//! Loading a model from a local folder laid out as on the hub.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::{Model, ModelError, Result, Tokenizer};

pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| ModelError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Shard file names listed by a `model.safetensors.index.json` (`weight_map` values), sorted.
pub(crate) fn shard_names(index_path: &Path) -> Result<Vec<String>> {
    let index = read_json(index_path)?;
    let map = index
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| {
            ModelError::InvalidConfig(format!("{}: no 'weight_map' object", index_path.display()))
        })?;
    let mut names = Vec::new();
    for (tensor, file) in map {
        let file = file.as_str().ok_or_else(|| {
            ModelError::InvalidConfig(format!(
                "{}: weight_map entry for '{tensor}' is not a file name",
                index_path.display()
            ))
        })?;
        if file.contains('/') || file.contains('\\') || file.contains("..") {
            return Err(ModelError::InvalidConfig(format!(
                "{}: shard name '{file}' is not a plain file name",
                index_path.display()
            )));
        }
        names.push(file.to_string());
    }
    names.sort();
    names.dedup();
    Ok(names)
}

/// The weight files of a model folder and their format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WeightFiles {
    /// `model.safetensors`, or the shards of `model.safetensors.index.json`.
    Safetensors(Vec<PathBuf>),
    /// `pytorch_model.bin`, or the shards of `pytorch_model.bin.index.json` (PyTorch zip
    /// checkpoints).
    Pytorch(Vec<PathBuf>),
}

impl WeightFiles {
    fn files(&self) -> &[PathBuf] {
        match self {
            WeightFiles::Safetensors(f) | WeightFiles::Pytorch(f) => f,
        }
    }
}

/// The shards an index in `dir` lists, each checked to exist.
fn shards(dir: &Path, index: &Path) -> Result<Vec<PathBuf>> {
    let files: Vec<PathBuf> = shard_names(index)?
        .into_iter()
        .map(|n| dir.join(n))
        .collect();
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(ModelError::Io {
            path: missing.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "shard listed in the index is missing",
            ),
        });
    }
    Ok(files)
}

/// The weight files of the model in `dir`, looked for in the order of
/// [`crate::hub::WEIGHT_FILES`]: safetensors (single or sharded) first, then PyTorch
/// checkpoints.
pub(crate) fn weight_files(dir: &Path) -> Result<WeightFiles> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(WeightFiles::Safetensors(vec![single]));
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        return Ok(WeightFiles::Safetensors(shards(dir, &index)?));
    }
    let single = dir.join("pytorch_model.bin");
    if single.is_file() {
        return Ok(WeightFiles::Pytorch(vec![single]));
    }
    let index = dir.join("pytorch_model.bin.index.json");
    if index.is_file() {
        return Ok(WeightFiles::Pytorch(shards(dir, &index)?));
    }
    Err(ModelError::Io {
        path: dir.to_path_buf(),
        source: std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no model.safetensors, model.safetensors.index.json, pytorch_model.bin or \
             pytorch_model.bin.index.json in this folder",
        ),
    })
}

fn describe(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn var_builder(
    weights: &WeightFiles,
    dtype: DType,
    device: &Device,
) -> Result<VarBuilder<'static>> {
    match weights {
        WeightFiles::Safetensors(files) => {
            // SAFETY: the files are memory-mapped; they must not be modified while the model
            // loads (the tensors are copied to the device before this function's caller
            // returns).
            unsafe { VarBuilder::from_mmaped_safetensors(files, dtype, device) }.map_err(|e| {
                ModelError::CorruptWeights {
                    file: describe(files),
                    reason: e.to_string(),
                }
            })
        }
        WeightFiles::Pytorch(files) => {
            let mut all = std::collections::HashMap::new();
            for file in files {
                for (name, t) in crate::pth::read_pth(file)? {
                    if all.insert(name.clone(), t).is_some() {
                        return Err(ModelError::CorruptWeights {
                            file: describe(files),
                            reason: format!("tensor '{name}' is in more than one shard"),
                        });
                    }
                }
            }
            Ok(VarBuilder::from_tensors(all, dtype, device))
        }
    }
}

/// Builds the model described by `config.json` in `dir` from the weights in `dir`.
pub(crate) fn model_from_dir(dir: &Path, dtype: DType, device: &Device) -> Result<Model> {
    let config_path = dir.join("config.json");
    let cfg = read_json(&config_path)?;
    let spec = crate::families::spec_from_config(&cfg).map_err(|e| match e {
        ModelError::InvalidConfig(msg) => {
            ModelError::InvalidConfig(format!("{}: {msg}", config_path.display()))
        }
        other => other,
    })?;
    let weights = weight_files(dir)?;
    let vb = var_builder(&weights, dtype, device)?;
    Model::from_spec(spec, vb).map_err(|e| e.with_file(&describe(weights.files())))
}

/// A model with its tokenizer (when the folder has `tokenizer.json`) and the folder it came from.
#[derive(Debug)]
pub struct Pretrained {
    /// The model.
    pub model: Model,
    /// The tokenizer, when `tokenizer.json` was found.
    pub tokenizer: Option<Tokenizer>,
    /// The folder the files were read from (a hub snapshot folder for a repo id).
    pub dir: PathBuf,
}

/// Loads a model and its tokenizer from a local folder when `dir_or_repo` is one, else from
/// the hub repo of that id (main revision; cache and offline mode from the environment, see
/// [`crate::HubEnv`]).
///
/// Only a string shaped `owner/name` is a hub id: a path that does not exist (`./model`,
/// `a/b/c`, `/abs/path`) or an existing file is an [`ModelError::Io`] naming it, never a hub
/// request. The weights are `model.safetensors`, `pytorch_model.bin`, or the shards of their
/// `.index.json`.
///
/// ```
/// let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene/tiny-gpt2");
/// let p = vene_models::load_pretrained(dir, candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// assert!(p.tokenizer.is_none());
/// assert_eq!(vene_hooks::HookableModel::model_type(&p.model), "gpt2");
/// # Ok::<(), vene_models::ModelError>(())
/// ```
pub fn load_pretrained(dir_or_repo: &str, dtype: DType, device: &Device) -> Result<Pretrained> {
    let path = Path::new(dir_or_repo);
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else if path.exists() || !crate::hub::is_repo_id(dir_or_repo) {
        // A local path that is not a folder, or a string that cannot be a hub repo id.
        return Err(ModelError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                if path.exists() {
                    "not a folder (give the model's folder, holding config.json)"
                } else {
                    "no such folder (and not a hub repo id of the form owner/name)"
                },
            ),
        });
    } else {
        crate::hub::snapshot(dir_or_repo, None, None).map_err(|e| match e {
            ModelError::Hub(msg) => ModelError::Hub(format!(
                "no local folder {dir_or_repo:?}, so it was read as a hub repo id: {msg}"
            )),
            other => other,
        })?
    };
    let model = model_from_dir(&dir, dtype, device)?;
    let tok_path = dir.join("tokenizer.json");
    let tokenizer = if tok_path.is_file() {
        Some(Tokenizer::from_file(&tok_path)?)
    } else {
        None
    };
    Ok(Pretrained {
        model,
        tokenizer,
        dir,
    })
}
