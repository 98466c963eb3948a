//! Subspaces: which dims each intervention acts on, per call (pyvene's `subspaces`).

use vene_interventions::{CallArgs, Selection};

use crate::{Result, VeneError};

/// pyvene's `subspaces` argument of `forward`.
///
/// Subspace ids go through the intervention's `subspace_partition` when it has one
/// (id `i` = partition entry `i`), else they are dims.
///
/// ```
/// use vene::Subspaces;
/// assert_eq!(Subspaces::from_json_str("0")?, Subspaces::Id(0));
/// assert_eq!(Subspaces::from_json_str("[2, 5, 17]")?, Subspaces::Ids(vec![2, 5, 17]));
/// let full = Subspaces::from_json_str("[[[0], [1]], null]")?;
/// assert_eq!(full, Subspaces::PerIntervention(vec![Some(vec![vec![0], vec![1]]), None]));
/// // pyvene's dicts of per-call arguments (SAE steering: a latent and a magnitude per example)
/// let steer = Subspaces::from_json_str(r#"[{"idx": 7, "mag": [2.0, -1.0]}]"#)?;
/// let args = vene::interventions::CallArgs::new()
///     .with("idx", 7.into())
///     .with("mag", serde_json::json!([2.0, -1.0]));
/// assert_eq!(steer, Subspaces::Args(vec![Some(args)]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Subspaces {
    /// One subspace id for every intervention and example.
    Id(usize),
    /// These ids for every intervention and example.
    Ids(Vec<usize>),
    /// `[intervention][example][ids]`; `None` for an intervention that uses its own dims.
    PerIntervention(Vec<Option<Vec<Vec<usize>>>>),
    /// Per-call keyword arguments, one entry per intervention (pyvene's subspace dicts, e.g.
    /// `{"idx": 10004, "mag": 100.0}`), given to
    /// [`vene_interventions::Intervention::forward_with_args`]; `None` for an intervention
    /// that gets none. The interventions act on their own dims.
    Args(Vec<Option<CallArgs>>),
}

impl Subspaces {
    /// Parses pyvene's forms: an int, a flat list of ints, or `[intervention][example][ids]`.
    pub fn from_json_str(json: &str) -> Result<Self> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|source| VeneError::Json {
                what: "subspaces".into(),
                source,
            })?;
        if let Some(i) = v.as_u64() {
            return Ok(Subspaces::Id(to_usize(i)?));
        }
        if v.is_object() {
            return Ok(Subspaces::Args(vec![Some(CallArgs::from_json(&v)?)]));
        }
        let list = v.as_array().ok_or_else(|| {
            VeneError::Subspaces(format!("expected an int, a list or an object, got {v}"))
        })?;
        if list.iter().any(serde_json::Value::is_object) {
            return Ok(Subspaces::Args(
                list.iter()
                    .map(|e| match e {
                        serde_json::Value::Null => Ok(None),
                        e => CallArgs::from_json(e).map(Some).map_err(|err| {
                            VeneError::Subspaces(format!("a list of argument objects: {err}"))
                        }),
                    })
                    .collect::<Result<_>>()?,
            ));
        }
        if list.iter().all(|e| e.as_u64().is_some()) {
            return Ok(Subspaces::Ids(
                list.iter()
                    .filter_map(|e| e.as_u64())
                    .map(to_usize)
                    .collect::<Result<_>>()?,
            ));
        }
        let per = serde_json::from_value::<Vec<Option<Vec<Vec<usize>>>>>(v.clone()).map_err(
            |source| VeneError::Json {
                what: "subspaces [intervention][example][ids]".into(),
                source,
            },
        )?;
        Ok(Subspaces::PerIntervention(per))
    }

    /// The per-call arguments of intervention `i` of `n_interventions` (empty unless
    /// [`Subspaces::Args`]; a single entry applies to every intervention).
    pub(crate) fn call_args(&self, i: usize, n_interventions: usize) -> Result<CallArgs> {
        match self {
            Subspaces::Args(per) if per.len() == 1 => Ok(per[0].clone().unwrap_or_default()),
            Subspaces::Args(per) if per.len() == n_interventions => {
                Ok(per[i].clone().unwrap_or_default())
            }
            Subspaces::Args(per) => Err(VeneError::Subspaces(format!(
                "{} argument entries given, the config has {n_interventions} interventions (give one per intervention, or one for all)",
                per.len()
            ))),
            _ => Ok(CallArgs::default()),
        }
    }

    /// The selection of intervention `i` for a batch of `batch`, through `partition`.
    pub(crate) fn selection(
        &self,
        i: usize,
        n_interventions: usize,
        batch: usize,
        partition: Option<&[Vec<usize>]>,
    ) -> Result<Selection> {
        let ids: Vec<Vec<usize>> = match self {
            Subspaces::Id(id) => vec![vec![*id]; batch],
            Subspaces::Ids(ids) => vec![ids.clone(); batch],
            Subspaces::Args(_) => return Ok(Selection::Default),
            Subspaces::PerIntervention(per) => {
                if per.len() != n_interventions {
                    return Err(VeneError::Subspaces(format!(
                        "{} entries given, the config has {n_interventions} interventions",
                        per.len()
                    )));
                }
                match per.get(i).cloned().flatten() {
                    None => return Ok(Selection::Default),
                    Some(rows) => {
                        if rows.len() != batch {
                            return Err(VeneError::Subspaces(format!(
                                "intervention {i}: {} examples given, the batch has {batch}",
                                rows.len()
                            )));
                        }
                        rows
                    }
                }
            }
        };
        let dims: Vec<Vec<usize>> = match partition {
            None => ids,
            Some(p) => ids
                .iter()
                .map(|row| {
                    let mut out = Vec::new();
                    for &id in row {
                        let part = p.get(id).ok_or_else(|| {
                            VeneError::Subspaces(format!(
                                "intervention {i}: subspace {id} is out of range for a partition of {} subspaces",
                                p.len()
                            ))
                        })?;
                        out.extend(expand_part(part));
                    }
                    Ok(out)
                })
                .collect::<Result<_>>()?,
        };
        match dims.first() {
            Some(first) if dims.iter().all(|d| d == first) => Ok(Selection::Dims(first.clone())),
            _ => Ok(Selection::PerExample(dims)),
        }
    }
}

/// A partition entry `[a, b]` is the range `a..b`; any other entry lists its dims.
pub(crate) fn expand_part(part: &[usize]) -> Vec<usize> {
    match part {
        [a, b] => (*a..*b).collect(),
        other => other.to_vec(),
    }
}

fn to_usize(x: u64) -> Result<usize> {
    usize::try_from(x).map_err(|_| VeneError::Subspaces(format!("index {x} is too large")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_maps_ids_to_ranges() {
        let p = vec![vec![0, 4], vec![4, 16]];
        let s = Subspaces::Id(0).selection(0, 1, 2, Some(&p)).unwrap();
        assert_eq!(s, Selection::Dims(vec![0, 1, 2, 3]));
        let s = Subspaces::PerIntervention(vec![Some(vec![vec![0], vec![1]])])
            .selection(0, 1, 2, Some(&p))
            .unwrap();
        assert_eq!(
            s,
            Selection::PerExample(vec![vec![0, 1, 2, 3], (4..16).collect()])
        );
        let e = Subspaces::Id(2).selection(0, 1, 2, Some(&p)).unwrap_err();
        assert!(e.to_string().contains("subspace 2 is out of range"), "{e}");
    }

    #[test]
    fn ids_without_partition_are_dims() {
        let s = Subspaces::Ids(vec![2, 5, 17])
            .selection(0, 1, 2, None)
            .unwrap();
        assert_eq!(s, Selection::Dims(vec![2, 5, 17]));
        let none = Subspaces::PerIntervention(vec![None, Some(vec![vec![1]])]);
        assert_eq!(none.selection(0, 2, 1, None).unwrap(), Selection::Default);
        assert!(none.selection(1, 2, 2, None).is_err());
    }
}
