//! Typed reads of an HF `config.json`, with errors that name the field.

use serde_json::Value;

use crate::{ModelError, Result};

/// An HF config being read by a family.
pub(crate) struct HfConfig<'a> {
    pub value: &'a Value,
    pub model_type: &'a str,
}

fn invalid(model_type: &str, msg: String) -> ModelError {
    ModelError::InvalidConfig(format!("{model_type} config: {msg}"))
}

impl<'a> HfConfig<'a> {
    pub(crate) fn new(value: &'a Value, model_type: &'a str) -> Self {
        Self { value, model_type }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    /// A required non-negative integer.
    pub(crate) fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?
            .ok_or_else(|| invalid(self.model_type, format!("missing '{key}'")))
    }

    /// The first of `keys` present, as a non-negative integer.
    pub(crate) fn usize_any(&self, keys: &[&str]) -> Result<usize> {
        for k in keys {
            if let Some(v) = self.opt_usize(k)? {
                return Ok(v);
            }
        }
        Err(invalid(
            self.model_type,
            format!("missing '{}'", keys.join("' or '")),
        ))
    }

    /// An optional non-negative integer (null counts as absent).
    pub(crate) fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    invalid(
                        self.model_type,
                        format!("'{key}' must be a non-negative integer, got {v}"),
                    )
                }),
        }
    }

    /// An optional number.
    pub(crate) fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().map(Some).ok_or_else(|| {
                invalid(
                    self.model_type,
                    format!("'{key}' must be a number, got {v}"),
                )
            }),
        }
    }

    /// A number with a default.
    pub(crate) fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        Ok(self.opt_f64(key)?.unwrap_or(default))
    }

    /// An optional boolean.
    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| {
                invalid(
                    self.model_type,
                    format!("'{key}' must be true or false, got {v}"),
                )
            }),
        }
    }

    /// A boolean with a default.
    pub(crate) fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        Ok(self.opt_bool(key)?.unwrap_or(default))
    }

    /// An optional string.
    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v.as_str().map(Some).ok_or_else(|| {
                invalid(
                    self.model_type,
                    format!("'{key}' must be a string, got {v}"),
                )
            }),
        }
    }

    /// A token id (`bos_token_id`, `eos_token_id`); a list takes its first entry.
    pub(crate) fn token(&self, key: &str) -> Option<u32> {
        let v = self.get(key)?;
        let v = v.as_array().and_then(|a| a.first()).unwrap_or(v);
        v.as_u64().and_then(|n| u32::try_from(n).ok())
    }

    /// `layer_types` (`sliding_attention` / `full_attention` per layer), when present.
    pub(crate) fn layer_types(&self, n_layers: usize) -> Result<Option<Vec<bool>>> {
        let Some(v) = self.get("layer_types") else {
            return Ok(None);
        };
        let list = v.as_array().ok_or_else(|| {
            invalid(
                self.model_type,
                format!("'layer_types' must be a list, got {v}"),
            )
        })?;
        if list.len() != n_layers {
            return Err(invalid(
                self.model_type,
                format!(
                    "'layer_types' has {} entries for {n_layers} layers",
                    list.len()
                ),
            ));
        }
        list.iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                _ => Err(invalid(
                    self.model_type,
                    format!("unknown layer type {t} (sliding_attention, full_attention)"),
                )),
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// An error about this config.
    pub(crate) fn error(&self, msg: impl Into<String>) -> ModelError {
        invalid(self.model_type, msg.into())
    }
}
