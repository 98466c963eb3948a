//! Saving and loading an intervenable model: `config.json` + one safetensors file per
//! intervention with state (trainable, constant source, autoencoder).

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use vene_models::LanguageModel;

use crate::config::{IntervenableConfig, RepresentationConfig, FORMAT_VERSION};
use crate::{IntervenableModel, Result, VeneError};

/// The name of the state file of the intervention with key `key`.
pub fn state_file_name(key: &str) -> String {
    format!("intkey_{key}.safetensors")
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> VeneError + '_ {
    move |source| VeneError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl<M: LanguageModel> IntervenableModel<M> {
    /// Saves the config (with every intervention's type and hyperparameters) as `config.json`
    /// and the state of each intervention that has one (trainable parameters, a constant
    /// source, an autoencoder's weights and its dims) as `intkey_<key>.safetensors`.
    ///
    /// [`IntervenableModel::load`] rebuilds it bit for bit, autoencoders passed as objects
    /// included.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut reprs = Vec::with_capacity(self.slots.len());
        for (slot, repr) in self.slots.iter().zip(&self.config.representations) {
            let iv = &slot.intervention;
            let mut r: RepresentationConfig = repr.clone();
            r.intervention = None;
            r.source_representation = None;
            r.intervention_type = Some(iv.type_name().to_string());
            if let serde_json::Value::Object(h) = iv.hyperparams() {
                for (k, v) in h {
                    r.hyperparams.insert(k, v);
                }
            }
            reprs.push(r);
            let mut state = iv.state_dict()?;
            if let Some(c) = &slot.constant_source {
                state.retain(|(k, _)| k != "source_representation");
                state.push(("source_representation".to_string(), c.clone()));
            }
            let has_state = !iv.vars().is_empty()
                || slot.constant_source.is_some()
                || state.iter().any(|(k, _)| k == "source_representation")
                || iv.type_name().contains("Autoencoder");
            if has_state {
                let path = dir.join(state_file_name(&slot.key));
                let map: HashMap<String, Tensor> = state
                    .into_iter()
                    .map(|(k, t)| Ok((k, t.contiguous()?)))
                    .collect::<Result<_>>()?;
                candle_core::safetensors::save(&map, &path).map_err(|e| VeneError::SavedFile {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?;
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
        }
        let path = dir.join("config.json");
        let text = serde_json::to_string_pretty(&json).map_err(|source| VeneError::Json {
            what: path.display().to_string(),
            source,
        })?;
        std::fs::write(&path, text).map_err(io_err(&path))
    }

    /// Loads a folder written by [`IntervenableModel::save`] or by pyvene's
    /// `IntervenableModel.save` (detected from its `config.json`), onto `model`.
    pub fn load(dir: impl AsRef<Path>, model: M) -> Result<Self> {
        let dir = dir.as_ref();
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
        let keys: Option<Vec<String>> = json
            .get("sorted_keys")
            .and_then(|k| serde_json::from_value(k.clone()).ok());
        let mut states = HashMap::new();
        if let Some(keys) = &keys {
            for key in keys {
                let file = dir.join(state_file_name(key));
                if file.exists() {
                    let tensors =
                        candle_core::safetensors::load(&file, model.device()).map_err(|e| {
                            VeneError::SavedFile {
                                path: file.display().to_string(),
                                reason: e.to_string(),
                            }
                        })?;
                    let mut v: Vec<(String, Tensor)> = tensors.into_iter().collect();
                    v.sort_by(|a, b| a.0.cmp(&b.0));
                    states.insert(key.clone(), v);
                }
            }
        }
        let mut cfg = cfg;
        for (i, r) in cfg.representations.iter_mut().enumerate() {
            let key = keys.as_ref().and_then(|k| k.get(i));
            if let Some(state) = key.and_then(|k| states.get(k)) {
                if let Some((_, c)) = state.iter().find(|(k, _)| k == "source_representation") {
                    r.source_representation = Some(c.clone());
                }
            }
        }
        Self::build(cfg, model, &states, keys)
    }
}
