//! Saving and loading an intervenable model: `config.json` + one safetensors file per
//! intervention with state (trainable, constant source, autoencoder).
//!
//! Saves are atomic (everything is written into a temporary folder beside the target, synced,
//! then renamed into place) and `config.json` lists every state file with its size and
//! sha256; loads check that every needed file is there and unaltered. See
//! `docs/guarantees.md`.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vene_autoencoder::atomic::StagedDir;
use vene_models::LanguageModel;

use crate::config::{IntervenableConfig, FORMAT_VERSION};
use crate::{IntervenableModel, Result, VeneError};

/// The name of the state file of the intervention with key `key`.
pub fn state_file_name(key: &str) -> String {
    format!("intkey_{key}.safetensors")
}

/// The hyperparameter saying that a representation's saved `source_representation` is the
/// config's constant source (held by the model), not the intervention object's own.
const CONSTANT_SOURCE: &str = "constant_source";

/// Options of [`IntervenableModel::save_with`].
///
/// ```
/// let opts = vene::SaveOptions::default().overwrite(true);
/// assert!(opts.overwrite);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveOptions {
    /// Replace a folder that already holds a saved model (none of its old files remain).
    /// Off by default: saving into a folder with files is then an error, and the folder is
    /// left as it was. A folder with files that is not a saved model (no `config.json`) is
    /// never replaced.
    pub overwrite: bool,
}

impl SaveOptions {
    /// Sets [`Self::overwrite`].
    pub fn overwrite(mut self, on: bool) -> Self {
        self.overwrite = on;
        self
    }
}

/// One state file as listed in `config.json` (`"state_files"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StateFileEntry {
    /// The representation's key.
    pub key: String,
    /// The file name, in the saved folder.
    pub file: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// The sha256 of its content, lowercase hex.
    pub sha256: String,
}

/// The tensors of one representation read back from its state file.
#[derive(Debug, Clone)]
pub(crate) struct SavedState {
    /// The file they came from (for errors).
    pub path: String,
    /// The tensors, sorted by name.
    pub tensors: Vec<(String, Tensor)>,
}

/// The lowercase hex sha256 of `bytes`.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes `files` (name, bytes) as the folder `dir`, atomically: into a staged folder that
/// replaces `dir` only once every file is written (`overwrite`: an existing `dir` may be
/// replaced; else it is a [`VeneError::SaveTarget`] error).
pub(crate) fn write_folder(dir: &Path, files: &[(String, Vec<u8>)], overwrite: bool) -> Result<()> {
    let staged = StagedDir::new(dir).map_err(io_err(dir))?;
    for (name, bytes) in files {
        let path = staged.path().join(name);
        std::fs::write(&path, bytes).map_err(io_err(&path))?;
    }
    staged.commit(overwrite).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            VeneError::SaveTarget {
                path: dir.display().to_string(),
                reason: e.to_string(),
            }
        } else {
            io_err(dir)(e)
        }
    })
}

/// An I/O error on `path`, as a `VeneError` (for `map_err`).
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VeneError + '_ {
    move |source| VeneError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Checks that every float tensor of `tensors` is finite.
pub(crate) fn check_finite(path: &str, key: &str, tensors: &[(String, Tensor)]) -> Result<()> {
    for (name, t) in tensors {
        if t.dtype().is_float() && t.elem_count() > 0 {
            let s = t
                .sub(t)?
                .sum_all()?
                .to_dtype(candle_core::DType::F64)?
                .to_scalar::<f64>()?;
            if s != 0.0 {
                return Err(VeneError::NonFiniteState {
                    path: path.to_string(),
                    key: key.to_string(),
                    tensor: name.clone(),
                });
            }
        }
    }
    Ok(())
}

/// Parses a safetensors file's bytes (validated first, so that damage is a typed error).
fn parse_safetensors(
    bytes: &[u8],
    path: &str,
    device: &candle_core::Device,
) -> Result<Vec<(String, Tensor)>> {
    let bad = |reason: String| VeneError::SavedFile {
        path: path.to_string(),
        reason,
    };
    safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let tensors =
        candle_core::safetensors::load_buffer(bytes, device).map_err(|e| bad(e.to_string()))?;
    let mut v: Vec<(String, Tensor)> = tensors.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

impl<M: LanguageModel> IntervenableModel<M> {
    /// Saves the config (with every intervention's type and hyperparameters) as `config.json`
    /// and the state of each intervention that has one (trainable parameters, a constant
    /// source, an autoencoder's weights and its dims) as `intkey_<key>.safetensors`, into a
    /// folder that does not exist yet or is empty (see [`Self::save_with`] to replace a save).
    ///
    /// The save is atomic: on any error the folder is exactly as it was. `config.json` lists
    /// every state file with its size and sha256. [`IntervenableModel::load`] rebuilds it bit
    /// for bit, autoencoders passed as objects included.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        self.save_with(dir, &SaveOptions::default())
    }

    /// [`Self::save`] with options: [`SaveOptions::overwrite`] replaces an earlier save.
    ///
    /// Everything is computed in memory first, written into a fresh folder beside `dir`,
    /// synced to disk (files and folder), and renamed into place.
    pub fn save_with(&self, dir: impl AsRef<Path>, opts: &SaveOptions) -> Result<()> {
        let dir = dir.as_ref();
        check_save_target(dir, opts)?;
        let mut reprs = Vec::with_capacity(self.slots.len());
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut manifest: Vec<StateFileEntry> = Vec::new();
        for (slot, repr) in self.slots.iter().zip(&self.config.representations) {
            let iv = &slot.intervention;
            let mut r = repr
                .clone()
                .with_intervention(iv.as_ref())
                .without_objects();
            // where the saved `source_representation` lives: the model's slot (a constant
            // source of the config) or the intervention object itself
            r.hyperparams.remove(CONSTANT_SOURCE);
            if slot.constant_source.is_some() {
                r.hyperparams
                    .insert(CONSTANT_SOURCE.into(), "config".into());
            }
            reprs.push(r);
            let mut state = iv.state_dict()?;
            if let Some(c) = &slot.constant_source {
                state.retain(|(k, _)| k != "source_representation");
                state.push(("source_representation".to_string(), c.clone()));
            }
            let has_state = iv.saves_state()
                || slot.constant_source.is_some()
                || state.iter().any(|(k, _)| k == "source_representation");
            if has_state {
                let name = state_file_name(&slot.key);
                let map: HashMap<String, Tensor> = state.into_iter().collect();
                let bytes = vene_autoencoder::safetensors_bytes(&map).map_err(|e| {
                    VeneError::SavedFile {
                        path: dir.join(&name).display().to_string(),
                        reason: e.to_string(),
                    }
                })?;
                manifest.push(StateFileEntry {
                    key: slot.key.clone(),
                    file: name.clone(),
                    bytes: bytes.len() as u64,
                    sha256: sha256_hex(&bytes),
                });
                files.push((name, bytes));
            }
        }
        let mut cfg = IntervenableConfig::new(reprs).mode(self.config.mode);
        cfg.format_version = FORMAT_VERSION;
        let mut json = serde_json::to_value(&cfg).map_err(|source| VeneError::Json {
            what: "intervenable config".into(),
            source,
        })?;
        if let serde_json::Value::Object(m) = &mut json {
            m.insert(
                "sorted_keys".into(),
                self.slots
                    .iter()
                    .map(|s| s.key.clone())
                    .collect::<Vec<_>>()
                    .into(),
            );
            m.insert(
                "state_files".into(),
                serde_json::to_value(&manifest).map_err(|source| VeneError::Json {
                    what: "state file manifest".into(),
                    source,
                })?,
            );
        }
        let text = serde_json::to_string_pretty(&json).map_err(|source| VeneError::Json {
            what: dir.join("config.json").display().to_string(),
            source,
        })?;
        files.push(("config.json".into(), text.into_bytes()));

        write_folder(dir, &files, opts.overwrite)
    }

    /// Loads a folder written by [`IntervenableModel::save`] or by pyvene's
    /// `IntervenableModel.save` (detected from its `config.json`), onto `model`.
    ///
    /// Every state file the folder needs must be there (those its `config.json` lists, and
    /// for folders without that list, those of trainable interventions); listed files must
    /// have the size and sha256 recorded; saved tensors must be finite. Errors name the file
    /// and the representation.
    pub fn load(dir: impl AsRef<Path>, model: M) -> Result<Self> {
        let dir = dir.as_ref();
        if !dir.is_dir() {
            return Err(VeneError::Io {
                path: dir.display().to_string(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such folder"),
            });
        }
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| VeneError::Json {
                what: path.display().to_string(),
                source,
            })?;
        if crate::load_pyvene::is_pyvene_config(&json) {
            return crate::load_pyvene::load_pyvene(dir, &json, model);
        }
        let cfg = IntervenableConfig::from_json_value(json.clone(), &path.display().to_string())?;
        let keys: Option<Vec<String>> = match json.get("sorted_keys") {
            None | Some(serde_json::Value::Null) => None,
            Some(k) => {
                Some(
                    serde_json::from_value(k.clone()).map_err(|source| VeneError::Json {
                        what: format!("{}: sorted_keys", path.display()),
                        source,
                    })?,
                )
            }
        };
        let manifest: Option<Vec<StateFileEntry>> = match json.get("state_files") {
            None | Some(serde_json::Value::Null) => None,
            Some(m) => {
                Some(
                    serde_json::from_value(m.clone()).map_err(|source| VeneError::Json {
                        what: format!("{}: state_files", path.display()),
                        source,
                    })?,
                )
            }
        };
        if let Some(k) = &keys {
            if k.len() != cfg.representations.len() {
                return Err(VeneError::Config(format!(
                    "{}: {} sorted keys for {} representations",
                    path.display(),
                    k.len(),
                    cfg.representations.len()
                )));
            }
        }
        if manifest.is_some() && keys.is_none() {
            return Err(VeneError::SavedFile {
                path: path.display().to_string(),
                reason: "lists state files but no sorted_keys".into(),
            });
        }
        let mut states = HashMap::new();
        if let Some(keys) = &keys {
            if let Some(m) = &manifest {
                for e in m {
                    if !keys.contains(&e.key) {
                        return Err(VeneError::SavedFile {
                            path: path.display().to_string(),
                            reason: format!("state_files lists unknown key {}", e.key),
                        });
                    }
                    if e.file != state_file_name(&e.key) {
                        return Err(VeneError::SavedFile {
                            path: path.display().to_string(),
                            reason: format!(
                                "state file of {} is named {:?}, expected {:?}",
                                e.key,
                                e.file,
                                state_file_name(&e.key)
                            ),
                        });
                    }
                }
            }
            for (key, repr) in keys.iter().zip(&cfg.representations) {
                let file = dir.join(state_file_name(key));
                let fname = file.display().to_string();
                let entry = manifest
                    .as_ref()
                    .and_then(|m| m.iter().find(|e| &e.key == key));
                let required = match &manifest {
                    Some(_) => entry.is_some(),
                    None => vene_interventions::needs_saved_state(repr.type_name()),
                };
                if !file.is_file() {
                    if required {
                        return Err(VeneError::MissingStateFile {
                            path: fname,
                            key: key.clone(),
                            type_name: repr.type_name().to_string(),
                        });
                    }
                    continue;
                }
                if manifest.is_some() && entry.is_none() {
                    // not part of this save
                    continue;
                }
                let bytes = read_bounded(&file, entry.map(|e| e.bytes))?;
                if let Some(e) = entry {
                    if bytes.len() as u64 != e.bytes {
                        return Err(VeneError::AlteredStateFile {
                            path: fname,
                            key: key.clone(),
                            reason: format!("{} bytes, {} when saved", bytes.len(), e.bytes),
                        });
                    }
                    let sum = sha256_hex(&bytes);
                    if !sum.eq_ignore_ascii_case(&e.sha256) {
                        return Err(VeneError::AlteredStateFile {
                            path: fname,
                            key: key.clone(),
                            reason: format!("sha256 {sum}, {} when saved", e.sha256),
                        });
                    }
                }
                let tensors = parse_safetensors(&bytes, &fname, model.device())?;
                check_finite(&fname, key, &tensors)?;
                states.insert(
                    key.clone(),
                    SavedState {
                        path: fname,
                        tensors,
                    },
                );
            }
        }
        let mut cfg = cfg;
        for (i, r) in cfg.representations.iter_mut().enumerate() {
            let key = keys.as_ref().and_then(|k| k.get(i));
            if let Some(state) = key.and_then(|k| states.get_mut(k)) {
                let pos = state
                    .tensors
                    .iter()
                    .position(|(k, _)| k == "source_representation");
                if let Some(pos) = pos {
                    let from_config = r.hyperparams.get(CONSTANT_SOURCE).and_then(|v| v.as_str())
                        == Some("config");
                    if from_config {
                        // the config's constant source, as it was: held by the model
                        let (_, c) = state.tensors.remove(pos);
                        r.source_representation = Some(c);
                    } else if manifest.is_none() {
                        // a folder of an earlier vene: as it loaded then
                        r.source_representation = Some(state.tensors[pos].1.clone());
                    }
                }
            }
        }
        Self::build(cfg, model, &states, keys)
    }
}

/// Reads `path`, refusing (before reading) a file larger than the manifest says.
fn read_bounded(path: &Path, expected: Option<u64>) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path).map_err(io_err(path))?.len();
    if let Some(want) = expected {
        if len != want {
            return Err(VeneError::AlteredStateFile {
                path: path.display().to_string(),
                key: path
                    .file_stem()
                    .map(|s| {
                        s.to_string_lossy()
                            .trim_start_matches("intkey_")
                            .to_string()
                    })
                    .unwrap_or_default(),
                reason: format!("{len} bytes, {want} when saved"),
            });
        }
    }
    std::fs::read(path).map_err(io_err(path))
}

/// Refuses a target that is a file, or a folder with files that is not a saved model.
pub(crate) fn check_save_target(dir: &Path, opts: &SaveOptions) -> Result<()> {
    let refuse = |reason: String| VeneError::SaveTarget {
        path: dir.display().to_string(),
        reason,
    };
    match std::fs::symlink_metadata(dir) {
        Err(_) => Ok(()),
        Ok(meta) if !meta.is_dir() => Err(refuse("exists and is not a folder".into())),
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
            if entries.next().is_none() {
                return Ok(());
            }
            if !opts.overwrite {
                return Err(refuse(
                    "already holds files; pass SaveOptions::default().overwrite(true) to replace an earlier save, or save into a new folder".into(),
                ));
            }
            if !dir.join("config.json").is_file() {
                return Err(refuse(
                    "holds files but no config.json: not a saved model, so it is not replaced even with overwrite".into(),
                ));
            }
            Ok(())
        }
    }
}
