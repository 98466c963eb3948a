//! [`CallArgs`]: per-call keyword arguments of an intervention (pyvene's subspace dicts).

use crate::{InterventionError, Result};

/// Keyword arguments given to an intervention for one call: pyvene's `subspaces` entries
/// that are dicts (`{"idx": 10004, "mag": 100.0}` in its SAE steering tutorials), which
/// pyvene hands to the intervention's `forward` as they are.
///
/// A value is a scalar (the same for every example) or a list with one entry per example;
/// [`Self::usizes`] and [`Self::f64s`] read either form for a batch.
///
/// ```
/// use vene_interventions::CallArgs;
///
/// let args = CallArgs::from_json(&serde_json::json!({"idx": 3, "mag": [1.0, -2.5]}))?;
/// assert_eq!(args.usizes("idx", 2)?, vec![3, 3]);
/// assert_eq!(args.f64s("mag", 2)?, vec![1.0, -2.5]);
/// assert!(args.f64s("mag", 3).is_err()); // two magnitudes for three examples
/// assert!(args.usizes("scale", 2).is_err()); // missing
/// # Ok::<(), vene_interventions::InterventionError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CallArgs(serde_json::Map<String, serde_json::Value>);

impl CallArgs {
    /// No arguments.
    pub fn new() -> Self {
        Self::default()
    }

    /// From a JSON object (pyvene's dict); anything else is an error.
    pub fn from_json(v: &serde_json::Value) -> Result<Self> {
        match v {
            serde_json::Value::Object(m) => Ok(Self(m.clone())),
            other => Err(InterventionError::Unsupported(format!(
                "per-call intervention arguments must be an object like {{\"idx\": 3, \"mag\": 2.0}}, got {other}"
            ))),
        }
    }

    /// Sets `key` to `value` (a number, or a list with one entry per example).
    pub fn with(mut self, key: impl Into<String>, value: serde_json::Value) -> Self {
        self.0.insert(key.into(), value);
        self
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The argument `key` as given.
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.0.get(key)
    }

    /// The argument names, sorted.
    pub fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }

    /// All of them, as a JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.0.clone())
    }

    /// `key` for each of `batch` examples, each read by `read`: a scalar is repeated, a list
    /// must have `batch` entries.
    fn per_example<T: Clone>(
        &self,
        key: &str,
        batch: usize,
        what: &str,
        read: impl Fn(&serde_json::Value) -> Option<T>,
    ) -> Result<Vec<T>> {
        let bad = |reason: String| {
            InterventionError::Unsupported(format!("per-call argument {key:?}: {reason}"))
        };
        let v = self.0.get(key).ok_or_else(|| {
            bad(format!(
                "missing (given: {:?})",
                self.0.keys().collect::<Vec<_>>()
            ))
        })?;
        match v {
            serde_json::Value::Array(items) => {
                if items.len() != batch {
                    return Err(bad(format!(
                        "{} values for a batch of {batch} (give one per example, or one for all)",
                        items.len()
                    )));
                }
                items
                    .iter()
                    .map(|x| read(x).ok_or_else(|| bad(format!("expected {what}, got {x}"))))
                    .collect()
            }
            x => {
                let one = read(x).ok_or_else(|| bad(format!("expected {what}, got {x}")))?;
                Ok(vec![one; batch])
            }
        }
    }

    /// `key` as one non-negative integer per example (e.g. a latent index).
    pub fn usizes(&self, key: &str, batch: usize) -> Result<Vec<usize>> {
        self.per_example(key, batch, "a non-negative integer", |x| {
            x.as_u64().and_then(|u| usize::try_from(u).ok())
        })
    }

    /// `key` as one finite number per example (e.g. a steering magnitude).
    pub fn f64s(&self, key: &str, batch: usize) -> Result<Vec<f64>> {
        self.per_example(key, batch, "a finite number", |x| {
            x.as_f64().filter(|f| f.is_finite())
        })
    }
}
