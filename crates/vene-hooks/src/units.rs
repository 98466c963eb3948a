//! Units (`pos`, `h`, `h.pos`) and gather/scatter of positions and heads, per example.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Tensor};

use crate::{HookError, Result};

/// What an intervention's locations index (pyvene's `unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Unit {
    /// Token positions.
    #[default]
    Pos,
    /// Heads (every position).
    H,
    /// Heads x positions.
    HPos,
}

impl Unit {
    /// pyvene's name of the unit.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Pos => "pos",
            Unit::H => "h",
            Unit::HPos => "h.pos",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Unit {
    type Err = HookError;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "pos" => Ok(Unit::Pos),
            "h" => Ok(Unit::H),
            "h.pos" => Ok(Unit::HPos),
            other => Err(HookError::UnknownUnit(other.to_string())),
        }
    }
}

impl serde::Serialize for Unit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Unit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

pub(crate) fn check_rows(what: &str, locations: &[Vec<usize>], batch: usize) -> Result<usize> {
    if locations.len() != batch {
        return Err(HookError::BadLocations(format!(
            "{what}: {} examples given for a batch of {batch}",
            locations.len()
        )));
    }
    let n = locations.first().map_or(0, Vec::len);
    if let Some((i, row)) = locations.iter().enumerate().find(|(_, r)| r.len() != n) {
        return Err(HookError::BadLocations(format!(
            "{what}: example {i} has {} locations, example 0 has {n}; every example needs the same number",
            row.len()
        )));
    }
    Ok(n)
}

/// Flat row indices `b * len + p` of `positions` into a `[batch * len, ...]` view, with bounds
/// checks naming the example and the position.
fn flat_position_index(
    positions: &[Vec<usize>],
    batch: usize,
    len: usize,
    device: &candle_core::Device,
) -> Result<(Tensor, usize)> {
    let n = check_rows("positions", positions, batch)?;
    let mut flat = Vec::with_capacity(batch * n);
    for (example, row) in positions.iter().enumerate() {
        for &position in row {
            if position >= len {
                return Err(HookError::PositionOutOfRange {
                    example,
                    position,
                    len,
                });
            }
            flat.push((example * len + position) as u32);
        }
    }
    Ok((Tensor::from_vec(flat, batch * n, device)?, n))
}

/// Whether every example's positions are `0..len`, in order.
fn every_position_in_order(positions: &[Vec<usize>], batch: usize, len: usize) -> bool {
    positions.len() == batch
        && positions
            .iter()
            .all(|row| row.len() == len && row.iter().enumerate().all(|(i, &p)| i == p))
}

fn dims3(x: &Tensor, what: &str) -> Result<(usize, usize, usize)> {
    x.dims3().map_err(|_| HookError::Shape {
        what: what.to_string(),
        expected: "[batch, seq, width]".to_string(),
        got: x.dims().to_vec(),
    })
}

/// Gathers, for each example `b`, the rows `positions[b]` of `x` `[batch, seq, d]`:
/// returns `[batch, n, d]`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::arange(0f32, 12., &Device::Cpu).unwrap().reshape((2, 3, 2)).unwrap();
/// let g = vene_hooks::gather_positions(&x, &[vec![2], vec![0]]).unwrap();
/// assert_eq!(g.to_vec3::<f32>().unwrap(), vec![vec![vec![4., 5.]], vec![vec![6., 7.]]]);
/// assert!(vene_hooks::gather_positions(&x, &[vec![3], vec![0]]).is_err());
/// ```
pub fn gather_positions(x: &Tensor, positions: &[Vec<usize>]) -> Result<Tensor> {
    let (b, t, d) = dims3(x, "activation")?;
    if every_position_in_order(positions, b, t) {
        // the units are the activation itself: no gather, no copy
        return Ok(x.clone());
    }
    let (idx, n) = flat_position_index(positions, b, t, x.device())?;
    Ok(x.reshape((b * t, d))?
        .index_select(&idx, 0)?
        .reshape((b, n, d))?)
}

/// Writes `values` `[batch, n, d]` into the rows `positions[b]` of `x` `[batch, seq, d]`;
/// returns the new tensor (x is left as it was). With a position repeated in one example,
/// the last value written wins.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::zeros((2, 3, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
/// let v = Tensor::ones((2, 1, 2), candle_core::DType::F32, &Device::Cpu).unwrap();
/// let y = vene_hooks::scatter_positions(&x, &[vec![2], vec![0]], &v).unwrap();
/// assert_eq!(y.sum_all().unwrap().to_scalar::<f32>().unwrap(), 4.0);
/// assert_eq!(y.get(0).unwrap().get(2).unwrap().to_vec1::<f32>().unwrap(), vec![1., 1.]);
/// ```
pub fn scatter_positions(x: &Tensor, positions: &[Vec<usize>], values: &Tensor) -> Result<Tensor> {
    let (b, t, d) = dims3(x, "activation")?;
    let (idx, n) = flat_position_index(positions, b, t, x.device())?;
    let expected = [b, n, d];
    if values.dims() != expected {
        return Err(HookError::Shape {
            what: "values to scatter".to_string(),
            expected: format!("{expected:?}"),
            got: values.dims().to_vec(),
        });
    }
    if every_position_in_order(positions, b, t) {
        // every row is replaced: the values are the new activation
        return Ok(values.to_dtype(x.dtype())?);
    }
    let values = values.to_dtype(x.dtype())?.reshape((b * n, d))?;
    let idx = idx
        .unsqueeze(1)?
        .broadcast_as((b * n, d))?
        .contiguous()?
        .to_dtype(DType::U32)?;
    let flat = x.reshape((b * t, d))?.contiguous()?;
    Ok(flat
        .scatter(&idx, &values.contiguous()?, 0)?
        .reshape((b, t, d))?)
}

/// Splits `[batch, seq, n_heads * head_dim]` into `[batch, n_heads, seq, head_dim]`.
pub fn split_heads(x: &Tensor, n_heads: usize) -> Result<Tensor> {
    let (b, t, w) = dims3(x, "activation")?;
    if n_heads == 0 || w % n_heads != 0 {
        return Err(HookError::Shape {
            what: format!("activation split into {n_heads} heads"),
            expected: format!("a width divisible by {n_heads}"),
            got: x.dims().to_vec(),
        });
    }
    Ok(x.reshape((b, t, n_heads, w / n_heads))?.transpose(1, 2)?)
}

/// Inverse of [`split_heads`]: `[batch, n_heads, seq, head_dim]` to `[batch, seq, width]`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, hd) = x.dims4()?;
    Ok(x.transpose(1, 2)?.contiguous()?.reshape((b, t, h * hd))?)
}

/// Head-and-position locations of one intervention for a batch: for each example, the heads
/// and the positions; the units are every (head, position) pair, heads outer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadPositions {
    /// `[example][heads]`.
    pub heads: Vec<Vec<usize>>,
    /// `[example][positions]`.
    pub positions: Vec<Vec<usize>>,
}

impl HeadPositions {
    /// Flat rows into a `[batch * n_heads * seq, head_dim]` view of split heads.
    fn flat_index(&self, batch: usize, n_heads: usize, len: usize) -> Result<(Vec<u32>, usize)> {
        let nh = check_rows("heads", &self.heads, batch)?;
        let np = check_rows("positions", &self.positions, batch)?;
        let mut flat = Vec::with_capacity(batch * nh * np);
        for example in 0..batch {
            for &head in &self.heads[example] {
                if head >= n_heads {
                    return Err(HookError::HeadOutOfRange {
                        example,
                        head,
                        n_heads,
                    });
                }
                for &position in &self.positions[example] {
                    if position >= len {
                        return Err(HookError::PositionOutOfRange {
                            example,
                            position,
                            len,
                        });
                    }
                    flat.push(((example * n_heads + head) * len + position) as u32);
                }
            }
        }
        Ok((flat, nh * np))
    }
}

/// Gathers (head, position) units from `x` `[batch, seq, n_heads * head_dim]`:
/// returns `[batch, n_heads_sel * n_pos, head_dim]`, heads outer.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_hooks::{gather_head_positions, HeadPositions};
/// // batch 1, seq 2, 2 heads of dim 2: values 0..8
/// let x = Tensor::arange(0f32, 8., &Device::Cpu).unwrap().reshape((1, 2, 4)).unwrap();
/// let loc = HeadPositions { heads: vec![vec![1]], positions: vec![vec![1]] };
/// let g = gather_head_positions(&x, 2, &loc).unwrap();
/// assert_eq!(g.to_vec3::<f32>().unwrap(), vec![vec![vec![6., 7.]]]);
/// ```
pub fn gather_head_positions(x: &Tensor, n_heads: usize, loc: &HeadPositions) -> Result<Tensor> {
    let (b, t, w) = dims3(x, "activation")?;
    let split = split_heads(x, n_heads)?;
    let hd = w / n_heads;
    let (flat, n) = loc.flat_index(b, n_heads, t)?;
    let idx = Tensor::from_vec(flat, b * n, x.device())?;
    Ok(split
        .contiguous()?
        .reshape((b * n_heads * t, hd))?
        .index_select(&idx, 0)?
        .reshape((b, n, hd))?)
}

/// Writes `values` `[batch, n_units, head_dim]` at the (head, position) units of `x`
/// `[batch, seq, n_heads * head_dim]`; returns the new tensor.
pub fn scatter_head_positions(
    x: &Tensor,
    n_heads: usize,
    loc: &HeadPositions,
    values: &Tensor,
) -> Result<Tensor> {
    let (b, t, w) = dims3(x, "activation")?;
    let split = split_heads(x, n_heads)?.contiguous()?;
    let hd = w / n_heads;
    let (flat, n) = loc.flat_index(b, n_heads, t)?;
    let expected = [b, n, hd];
    if values.dims() != expected {
        return Err(HookError::Shape {
            what: "values to scatter".to_string(),
            expected: format!("{expected:?}"),
            got: values.dims().to_vec(),
        });
    }
    let idx = Tensor::from_vec(flat, (b * n, 1), x.device())?
        .broadcast_as((b * n, hd))?
        .contiguous()?;
    let values = values
        .to_dtype(x.dtype())?
        .reshape((b * n, hd))?
        .contiguous()?;
    let out = split
        .reshape((b * n_heads * t, hd))?
        .scatter(&idx, &values, 0)?
        .reshape((b, n_heads, t, hd))?;
    merge_heads(&out)
}
