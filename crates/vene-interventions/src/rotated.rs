//! Distributed alignment search: `RotatedSpaceIntervention` (pyvene's DAS).

use candle_core::{DType, Device, Tensor, Var};

use crate::orthogonal::OrthogonalParam;
use crate::selection::{InterchangeDim, Resolved};
use crate::state::embed_dim_entry;
use crate::swap::{check_base, combine, required_source, Op};
use crate::{Intervention, InterventionError, Placement, Result, Selection};

/// `x` `[B, n, d]` times `m` `[d, k]`, computed in `m`'s dtype: `[B, n, k]`.
pub(crate) fn project(x: &Tensor, m: &Tensor) -> Result<Tensor> {
    let (b, n, d) = x.dims3()?;
    let k = m.dim(1)?;
    let x = x.to_dtype(m.dtype())?.reshape((b * n, d))?;
    Ok(x.matmul(m)?.reshape((b, n, k))?)
}

/// `f(base @ R, source @ R) @ Rᵀ` in `base`'s dtype, `R` = `rotation`'s matrix: `base` and
/// `source` combined by `f` in the rotated basis.
pub(crate) fn in_rotated_basis(
    rotation: &OrthogonalParam,
    base: &Tensor,
    source: &Tensor,
    f: impl FnOnce(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let r = rotation.matrix()?;
    let rb = project(base, &r)?;
    let rs = project(source, &r)?;
    let mixed = f(&rb, &rs)?;
    Ok(project(&mixed, &r.t()?)?.to_dtype(base.dtype())?)
}

/// A full rotation from a given square `r` `[d, d]` (a saved `rotate_layer.weight`), with `d`.
pub(crate) fn square_rotation(r: &Tensor) -> Result<(usize, OrthogonalParam)> {
    let (n, k) = r.dims2()?;
    if n != k {
        return Err(InterventionError::Shape {
            what: "rotate_layer.weight",
            expected: "a square matrix".into(),
            got: vec![n, k],
        });
    }
    Ok((n, OrthogonalParam::from_tensor(r)?))
}

/// Swap in a learned orthogonal basis (pyvene's `RotatedSpaceIntervention`):
/// `rb = base @ R`, `rs = source @ R`, `rb[sel] = rs[sel]`, output `rb @ Rᵀ`.
///
/// `R` `[d, d]` is trainable and kept orthogonal (see [`OrthogonalParam`]); the default
/// selection is the first `interchange_dim` rotated dims (`d` unless set).
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_interventions::{Intervention, RotatedSpaceIntervention, Selection};
///
/// let iv = RotatedSpaceIntervention::new(4, 0, DType::F32, &Device::Cpu)?.with_interchange_dim(4);
/// let base = Tensor::zeros((1, 1, 4), DType::F32, &Device::Cpu)?;
/// let source = Tensor::new(&[[[1f32, 2., 3., 4.]]], &Device::Cpu)?;
/// // Swapping every rotated dim gives the source back.
/// let out = iv.forward(&base, Some(&source), &Selection::Default)?;
/// let err = (out - &source)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
/// assert!(err < 1e-5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct RotatedSpaceIntervention {
    embed_dim: usize,
    rotation: OrthogonalParam,
    interchange_dim: InterchangeDim,
}

impl RotatedSpaceIntervention {
    /// A random orthogonal rotation of width `embed_dim`, seeded by `seed`.
    pub fn new(embed_dim: usize, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            embed_dim,
            rotation: OrthogonalParam::random(embed_dim, embed_dim, seed, dtype, device)?,
            interchange_dim: InterchangeDim::First(embed_dim),
        })
    }

    /// From a given rotation `r` `[d, d]` (e.g. a saved `rotate_layer.weight`).
    pub fn from_rotation(r: &Tensor) -> Result<Self> {
        let (n, rotation) = square_rotation(r)?;
        Ok(Self {
            embed_dim: n,
            rotation,
            interchange_dim: InterchangeDim::First(n),
        })
    }

    /// Swaps the first `k` rotated dims by default.
    pub fn with_interchange_dim(mut self, k: usize) -> Self {
        self.interchange_dim = InterchangeDim::First(k);
        self
    }

    /// Sets the default rotated dims; checked against `embed_dim`.
    pub fn set_interchange_dim(&mut self, dims: impl Into<InterchangeDim>) -> Result<()> {
        let dims = dims.into();
        dims.resolve(self.embed_dim, "rotated space")?;
        self.interchange_dim = dims;
        Ok(())
    }

    /// The default rotated dims.
    pub fn interchange_dim(&self) -> &InterchangeDim {
        &self.interchange_dim
    }

    /// The orthogonal rotation `R` `[d, d]` in use.
    pub fn rotation(&self) -> Result<Tensor> {
        self.rotation.matrix()
    }
}

impl Intervention for RotatedSpaceIntervention {
    fn type_name(&self) -> &'static str {
        "RotatedSpaceIntervention"
    }
    fn embed_dim(&self) -> usize {
        self.embed_dim
    }
    fn forward(
        &self,
        base: &Tensor,
        source: Option<&Tensor>,
        selection: &Selection,
    ) -> Result<Tensor> {
        let batch = check_base(base, self.embed_dim)?;
        let source = required_source(self.type_name(), base, source)?;
        let sel = Resolved::new(
            selection,
            &self.interchange_dim,
            self.embed_dim,
            batch,
            "rotated space",
        )?;
        in_rotated_basis(&self.rotation, base, &source, |rb, rs| {
            combine(rb, rs, &sel, Op::Replace)
        })
    }
    fn vars(&self) -> Vec<Var> {
        vec![self.rotation.var().clone()]
    }
    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![
            ("rotate_layer.weight".into(), self.rotation.parameter()),
            embed_dim_entry(self.embed_dim)?,
            (
                "interchange_dim".into(),
                self.interchange_dim.to_tensor(&Device::Cpu)?,
            ),
        ])
    }
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({ "embed_dim": self.embed_dim, "interchange_dim": self.interchange_dim })
    }
    fn to(&self, placement: &Placement) -> Result<Box<dyn Intervention>> {
        Ok(Box::new(Self {
            rotation: self.rotation.placed(placement)?,
            ..self.clone()
        }))
    }
}
