//! One intervention's state saved and loaded on its own (pyvene's `save_intervention` /
//! `load_intervention`): `intkey_<key>.safetensors` holding the intervention's state dict and,
//! in the file's safetensors metadata, its config entry (type, hyperparameters, site).
//!
//! One file per key, written atomically, so that a folder can collect several keys and a
//! failed save leaves an earlier file as it was.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::Tensor;
use vene_interventions::Intervention;
use vene_models::LanguageModel;

use crate::config::RepresentationConfig;
use crate::save::io_err;
use crate::{IntervenableModel, Result, VeneError};

/// The safetensors metadata entry holding the intervention's config entry (JSON).
const META_KEY: &str = "vene_intervention";
/// The version of that entry this vene writes and reads.
const META_VERSION: u64 = 1;
/// The state dict name of a constant source (pyvene's `source_representation`).
const SOURCE: &str = "source_representation";
/// The largest single-intervention file read (an SAE of 2^32 f32 values fits).
const MAX_FILE_BYTES: u64 = 1 << 36;

impl<M: LanguageModel> IntervenableModel<M> {
    /// The index of the slot with key `key`, or an error listing the keys.
    fn slot_index(&self, key: &str) -> Result<usize> {
        self.slots.iter().position(|s| s.key == key).ok_or_else(|| {
            VeneError::Config(format!(
                "no intervention has key {key:?}; the keys are {:?}",
                self.keys()
            ))
        })
    }

    /// Saves the intervention with key `key` alone (pyvene's `save_intervention`, for one
    /// key): its state dict (a constant source of the config included) as
    /// `<dir>/intkey_<key>.safetensors`, with its config entry (type, hyperparameters, site) in
    /// the file's metadata. Returns the file's path.
    ///
    /// `dir` is created if needed; other files in it are kept (save several keys into one
    /// folder). The file is written atomically: on error an earlier file is as it was.
    /// [`Self::load_intervention`] reads it back bit for bit.
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use vene::{IntervenableConfig, IntervenableModel, RepresentationConfig};
    /// use vene::hooks::Component;
    /// use vene::models::{Gpt2Config, Model};
    ///
    /// let tiny = || Model::random_gpt2(&Gpt2Config::tiny(32, 8, 1, 2), DType::F32, &Device::Cpu).map(|m| m.0);
    /// let config = || IntervenableConfig::new(vec![RepresentationConfig::new(0, Component::BlockOutput)
    ///     .intervention_type("LowRankRotatedSpaceIntervention").low_rank_dimension(2)
    ///     .hyperparam("seed", 1.into())]);
    /// let trained = IntervenableModel::new(config(), tiny()?)?;
    /// let key = trained.keys()[0].to_string();
    /// let dir = tempfile::tempdir()?;
    /// trained.save_intervention(dir.path(), &key)?;
    ///
    /// let mut other = IntervenableModel::new(
    ///     IntervenableConfig::new(vec![RepresentationConfig::new(0, Component::BlockOutput)
    ///         .intervention_type("LowRankRotatedSpaceIntervention").low_rank_dimension(2)
    ///         .hyperparam("seed", 2.into())]),
    ///     tiny()?,
    /// )?;
    /// other.load_intervention(dir.path(), &key)?;
    /// let a = trained.intervention(&key).unwrap().state_dict()?;
    /// let b = other.intervention(&key).unwrap().state_dict()?;
    /// assert_eq!(a[0].1.flatten_all()?.to_vec1::<f32>()?, b[0].1.flatten_all()?.to_vec1::<f32>()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn save_intervention(&self, dir: impl AsRef<Path>, key: &str) -> Result<PathBuf> {
        let dir = dir.as_ref();
        let i = self.slot_index(key)?;
        let slot = &self.slots[i];
        let iv = &slot.intervention;
        let mut entry: RepresentationConfig = self.config.representations[i].clone();
        entry.intervention = None;
        entry.source_representation = None;
        entry.intervention_type = Some(iv.type_name().to_string());
        if let serde_json::Value::Object(h) = iv.hyperparams() {
            entry.hyperparams.extend(h);
        }
        let mut state = iv.state_dict()?;
        if let Some(c) = &slot.constant_source {
            state.retain(|(k, _)| k != SOURCE);
            state.push((SOURCE.to_string(), c.clone()));
        }
        let meta = serde_json::json!({
            "version": META_VERSION,
            "key": key,
            "constant_source": slot.constant_source.is_some(),
            "representation": serde_json::to_value(&entry).map_err(|source| VeneError::Json {
                what: format!("config entry of {key}"),
                source,
            })?,
        });
        let path = dir.join(crate::state_file_name(key));
        let contiguous: Vec<(String, Tensor)> = state
            .into_iter()
            .map(|(k, t)| Ok((k, t.contiguous()?)))
            .collect::<Result<_>>()?;
        let metadata = HashMap::from([(META_KEY.to_string(), meta.to_string())]);
        let bytes = safetensors::tensor::serialize(contiguous, Some(metadata)).map_err(|e| {
            VeneError::SavedFile {
                path: path.display().to_string(),
                reason: format!("cannot serialize the state: {e}"),
            }
        })?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        vene_autoencoder::atomic::write_file(&path, &bytes).map_err(io_err(&path))?;
        Ok(path)
    }

    /// pyvene's `save_intervention(save_directory)`: [`Self::save_intervention`] for every
    /// key, into `dir`. Returns the files written, in key order. Each file is written
    /// atomically; on error the files written before it stay.
    pub fn save_interventions(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>> {
        let keys: Vec<String> = self.slots.iter().map(|s| s.key.clone()).collect();
        keys.iter()
            .map(|k| self.save_intervention(dir.as_ref(), k))
            .collect()
    }

    /// pyvene's `load_intervention(load_directory)`: [`Self::load_intervention`] for every
    /// key, from `dir`. All or nothing: on any error (a missing or bad file) no intervention
    /// has changed.
    pub fn load_interventions(&mut self, dir: impl AsRef<Path>) -> Result<()> {
        let slots = self.slots.clone();
        let reprs = self.config.representations.clone();
        let keys: Vec<String> = self.slots.iter().map(|s| s.key.clone()).collect();
        for k in &keys {
            if let Err(e) = self.load_intervention(dir.as_ref(), k) {
                self.slots = slots;
                self.config.representations = reprs;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Replaces the intervention with key `key` by the one saved in
    /// `<dir>/intkey_<key>.safetensors` by [`Self::save_intervention`] (pyvene's
    /// `load_intervention`, for one key). Interventions linked to it (same link key) get it
    /// too; a constant source saved with it replaces the config's.
    ///
    /// The file must exist, be a valid safetensors file with vene's config entry, have been
    /// saved for this key, site and intervention type, hold finite tensors, and rebuild an
    /// intervention of the slot's width. On any error the model is unchanged.
    pub fn load_intervention(&mut self, dir: impl AsRef<Path>, key: &str) -> Result<()> {
        let i = self.slot_index(key)?;
        let path = dir.as_ref().join(crate::state_file_name(key));
        let fname = path.display().to_string();
        let slot = &self.slots[i];
        let current = slot.intervention.clone();
        let repr = &self.config.representations[i];
        let bad = |reason: String| VeneError::SavedFile {
            path: fname.clone(),
            reason,
        };
        let len = match std::fs::metadata(&path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VeneError::MissingStateFile {
                    path: fname,
                    key: key.to_string(),
                    type_name: current.type_name().to_string(),
                })
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        if len > MAX_FILE_BYTES {
            return Err(bad(format!(
                "{len} bytes, more than the {MAX_FILE_BYTES} an intervention file may hold"
            )));
        }
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let meta_text = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY))
            .ok_or_else(|| {
                bad(format!(
                    "no {META_KEY:?} metadata: not written by save_intervention"
                ))
            })?;
        let meta: serde_json::Value =
            serde_json::from_str(meta_text).map_err(|source| VeneError::Json {
                what: format!("{fname}: {META_KEY}"),
                source,
            })?;
        match meta.get("version").and_then(serde_json::Value::as_u64) {
            Some(v) if v <= META_VERSION => {}
            v => {
                return Err(bad(format!(
                    "{META_KEY} version {v:?}; this vene reads up to {META_VERSION}"
                )))
            }
        }
        let saved_key = meta.get("key").and_then(serde_json::Value::as_str);
        if saved_key != Some(key) {
            return Err(bad(format!("saved for key {saved_key:?}, not {key:?}")));
        }
        let saved: RepresentationConfig = serde_json::from_value(
            meta.get("representation")
                .cloned()
                .ok_or_else(|| bad(format!("{META_KEY} has no representation")))?,
        )
        .map_err(|source| VeneError::Json {
            what: format!("{fname}: representation"),
            source,
        })?;
        if (saved.layer, saved.component, saved.unit) != (repr.layer, repr.component, repr.unit) {
            return Err(bad(format!(
                "saved for layer {} {} unit {}, but {key} is layer {} {} unit {}",
                saved.layer, saved.component, saved.unit, repr.layer, repr.component, repr.unit
            )));
        }
        let type_name = saved.type_name().to_string();
        if vene_interventions::parse_type_name(&type_name).unwrap_or(type_name.as_str())
            != current.type_name()
        {
            return Err(bad(format!(
                "holds a {type_name}, but {key} is a {}",
                current.type_name()
            )));
        }
        let tensors: Vec<(String, Tensor)> =
            candle_core::safetensors::load_buffer(&bytes, self.model.device())
                .map_err(|e| bad(e.to_string()))?
                .into_iter()
                .collect();
        crate::save::check_finite(&fname, key, &tensors)?;
        let mut state: HashMap<String, Tensor> = tensors.into_iter().collect();
        let from_config = meta
            .get("constant_source")
            .and_then(serde_json::Value::as_bool)
            == Some(true);
        let constant = if from_config {
            let c = state.remove(SOURCE).ok_or_else(|| {
                bad(format!(
                    "marked with a constant source but holds no {SOURCE}"
                ))
            })?;
            if c.dims() != [slot.width] {
                return Err(bad(format!(
                    "constant source has shape {:?}, expected [{}]",
                    c.dims(),
                    slot.width
                )));
            }
            Some(c.to_dtype(self.model.dtype())?)
        } else {
            None
        };
        let built = vene_interventions::build_intervention(
            &type_name,
            slot.width,
            &crate::intervenable::hyperparams_of(&saved),
            &state,
            self.model.device(),
            self.model.dtype(),
        )
        .map_err(|e| VeneError::BadState {
            path: fname.clone(),
            key: key.to_string(),
            source: Box::new(e.into()),
        })?;
        if built.embed_dim() != slot.width {
            return Err(bad(format!(
                "the saved {type_name} has width {}, {key} has width {}",
                built.embed_dim(),
                slot.width
            )));
        }
        // Everything checked: install it in every slot sharing the old one.
        let new: Arc<dyn Intervention> = Arc::from(built);
        for (j, s) in self.slots.iter_mut().enumerate() {
            if !Arc::ptr_eq(&s.intervention, &current) {
                continue;
            }
            s.intervention = new.clone();
            // the config describes what is loaded (a later save records it)
            let r = &mut self.config.representations[j];
            if r.intervention.is_some() {
                r.intervention = Some(new.clone());
            }
            r.hyperparams = saved.hyperparams.clone();
            r.low_rank_dimension = saved.low_rank_dimension;
            r.latent_dim = saved.latent_dim;
        }
        if let Some(c) = constant {
            self.slots[i].constant_source = Some(c.clone());
            self.config.representations[i].source_representation = Some(c);
        }
        Ok(())
    }
}
