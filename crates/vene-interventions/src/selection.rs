//! Resolution of a [`Selection`] into concrete dims, and the default dims of an intervention.

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::{InterventionError, Result, Selection};

/// The dims an intervention acts on when a call passes [`Selection::Default`]
/// (pyvene's `interchange_dim`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterchangeDim {
    /// The first `k` dims (pyvene `base[..., :k]`; pyvene's default is `k = embed_dim`).
    First(usize),
    /// These dims (pyvene `set_interchange_dim([..])`).
    Dims(Vec<usize>),
}

impl InterchangeDim {
    /// The dims it names, checked against `width`.
    pub fn resolve(&self, width: usize, space: &'static str) -> Result<Vec<usize>> {
        match self {
            InterchangeDim::First(k) => {
                if *k > width {
                    return Err(InterventionError::DimOutOfRange {
                        what: "interchange_dim",
                        index: *k,
                        space,
                        width,
                    });
                }
                Ok((0..*k).collect())
            }
            InterchangeDim::Dims(dims) => {
                check_dims(dims, width, "interchange dim", space)?;
                Ok(dims.clone())
            }
        }
    }

    /// pyvene's `interchange_dim` buffer: a 0-d i64 tensor for `First`, 1-d for `Dims`.
    pub fn to_tensor(&self, device: &Device) -> Result<Tensor> {
        Ok(match self {
            InterchangeDim::First(k) => Tensor::new(*k as i64, device)?,
            InterchangeDim::Dims(d) => {
                Tensor::new(d.iter().map(|&i| i as i64).collect::<Vec<_>>(), device)?
            }
        })
    }

    /// Reads pyvene's `interchange_dim` buffer (0-d: first k; 1-d: dims).
    pub fn from_tensor(t: &Tensor) -> Result<Self> {
        let t = t.to_dtype(DType::I64)?;
        match t.rank() {
            0 => Ok(InterchangeDim::First(non_negative(t.to_scalar::<i64>()?)?)),
            1 => Ok(InterchangeDim::Dims(
                t.to_vec1::<i64>()?
                    .into_iter()
                    .map(non_negative)
                    .collect::<Result<_>>()?,
            )),
            _ => Err(InterventionError::Shape {
                what: "interchange_dim",
                expected: "a scalar or a list of dims".into(),
                got: t.dims().to_vec(),
            }),
        }
    }
}

/// A list of dims (`vec![3, 7]`, `&[3, 7]`, `[3, 7]`) converts into
/// [`InterchangeDim::Dims`], so every `set_interchange_dim` takes the same arguments.
///
/// There is deliberately no conversion from a bare integer: pyvene reads an integer
/// `interchange_dim` as "the first k dims" for Vanilla and rotated interventions but as
/// "latent k" for autoencoder interventions. Say which: `InterchangeDim::First(k)` or
/// `vec![k]`.
///
/// ```
/// use vene_interventions::InterchangeDim;
///
/// assert_eq!(InterchangeDim::from(vec![3, 7]), InterchangeDim::Dims(vec![3, 7]));
/// assert_eq!(InterchangeDim::from([3, 7]), InterchangeDim::Dims(vec![3, 7]));
/// assert_eq!(InterchangeDim::from(&[3usize, 7][..]), InterchangeDim::Dims(vec![3, 7]));
/// assert_eq!(InterchangeDim::from(0..3), InterchangeDim::First(3));
/// assert_eq!(InterchangeDim::from(2..4), InterchangeDim::Dims(vec![2, 3]));
/// ```
impl From<Vec<usize>> for InterchangeDim {
    fn from(dims: Vec<usize>) -> Self {
        InterchangeDim::Dims(dims)
    }
}

impl From<&[usize]> for InterchangeDim {
    fn from(dims: &[usize]) -> Self {
        InterchangeDim::Dims(dims.to_vec())
    }
}

impl<const N: usize> From<[usize; N]> for InterchangeDim {
    fn from(dims: [usize; N]) -> Self {
        InterchangeDim::Dims(dims.to_vec())
    }
}

/// `0..k` is [`InterchangeDim::First`]`(k)`; any other range lists its dims.
impl From<std::ops::Range<usize>> for InterchangeDim {
    fn from(range: std::ops::Range<usize>) -> Self {
        if range.start == 0 {
            InterchangeDim::First(range.end)
        } else {
            InterchangeDim::Dims(range.collect())
        }
    }
}

fn non_negative(v: i64) -> Result<usize> {
    usize::try_from(v).map_err(|_| InterventionError::Shape {
        what: "interchange_dim",
        expected: "non-negative dims".into(),
        got: vec![],
    })
}

/// Checks that every dim is below `width` and none repeats.
pub(crate) fn check_dims(
    dims: &[usize],
    width: usize,
    what: &'static str,
    space: &'static str,
) -> Result<()> {
    let mut seen = vec![false; width];
    for &index in dims {
        match seen.get_mut(index) {
            None => {
                return Err(InterventionError::DimOutOfRange {
                    what,
                    index,
                    space,
                    width,
                })
            }
            Some(true) => return Err(InterventionError::DuplicateDim { what, index }),
            Some(s) => *s = true,
        }
    }
    Ok(())
}

/// A selection with its dims made concrete and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// The same dims for every example.
    Same(Vec<usize>),
    /// One list of dims per example.
    PerExample(Vec<Vec<usize>>),
}

impl Resolved {
    /// Resolves `selection` for a batch of `batch` examples over a space of `width` dims;
    /// [`Selection::Default`] becomes `default`. A per-example selection whose rows are all
    /// equal becomes [`Resolved::Same`].
    pub fn new(
        selection: &Selection,
        default: &InterchangeDim,
        width: usize,
        batch: usize,
        space: &'static str,
    ) -> Result<Self> {
        match selection {
            Selection::Default => Ok(Resolved::Same(default.resolve(width, space)?)),
            Selection::Dims(d) => {
                check_dims(d, width, "subspace dim", space)?;
                Ok(Resolved::Same(d.clone()))
            }
            Selection::PerExample(rows) => {
                if rows.len() != batch {
                    return Err(InterventionError::SelectionBatch {
                        got: rows.len(),
                        batch,
                    });
                }
                for r in rows {
                    check_dims(r, width, "subspace dim", space)?;
                }
                match rows.first() {
                    Some(first) if rows.iter().all(|r| r == first) => {
                        Ok(Resolved::Same(first.clone()))
                    }
                    _ => Ok(Resolved::PerExample(rows.clone())),
                }
            }
        }
    }

    /// Whether nothing is selected for any example.
    pub fn is_empty(&self) -> bool {
        match self {
            Resolved::Same(d) => d.is_empty(),
            Resolved::PerExample(r) => r.iter().all(|d| d.is_empty()),
        }
    }

    /// A `u8` mask, 1 at selected dims: `[1, 1, width]` or `[B, 1, width]`.
    pub fn mask(&self, width: usize, device: &Device) -> Result<Tensor> {
        let row = |dims: &[usize]| {
            let mut m = vec![0u8; width];
            for &d in dims {
                if let Some(x) = m.get_mut(d) {
                    *x = 1;
                }
            }
            m
        };
        Ok(match self {
            Resolved::Same(d) => Tensor::from_vec(row(d), (1, 1, width), device)?,
            Resolved::PerExample(rows) => {
                let data: Vec<u8> = rows.iter().flat_map(|d| row(d)).collect();
                Tensor::from_vec(data, (rows.len(), 1, width), device)?
            }
        })
    }
}
