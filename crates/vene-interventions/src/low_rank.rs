//! `LowRankRotatedSpaceIntervention`: interchange in a learned k-dim orthonormal subspace.

use candle_core::{DType, Device, Tensor, Var};

use crate::orthogonal::OrthogonalParam;
use crate::rotated::project;
use crate::selection::{InterchangeDim, Resolved};
use crate::state::embed_dim_entry;
use crate::swap::{check_base, required_source};
use crate::{Intervention, InterventionError, Placement, Result, Selection};

/// Interchange in a learned low-rank subspace (pyvene's `LowRankRotatedSpaceIntervention`):
/// `R` `[d, k]` with orthonormal columns, output `base + ((source - base) @ R[:, sel]) @ R[:, sel]ᵀ`.
///
/// The default selection is every one of the `k` columns; a [`Selection`] picks columns
/// (pyvene's `subspaces`, after the facade applied `subspace_partition`).
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_interventions::{Intervention, LowRankRotatedSpaceIntervention, Selection};
///
/// // Rank 1 along the first axis: only dim 0 is taken from the source.
/// let r = Tensor::new(&[[1f32], [0.], [0.]], &Device::Cpu)?;
/// let iv = LowRankRotatedSpaceIntervention::from_rotation(&r)?;
/// let base = Tensor::new(&[[[1f32, 2., 3.]]], &Device::Cpu)?;
/// let source = Tensor::new(&[[[7f32, 8., 9.]]], &Device::Cpu)?;
/// let out = iv.forward(&base, Some(&source), &Selection::Default)?;
/// assert_eq!(out.flatten_all()?.to_vec1::<f32>()?, vec![7., 2., 3.]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct LowRankRotatedSpaceIntervention {
    embed_dim: usize,
    rank: usize,
    rotation: OrthogonalParam,
}

impl LowRankRotatedSpaceIntervention {
    /// A random `[embed_dim, low_rank_dimension]` subspace, seeded by `seed`.
    pub fn new(
        embed_dim: usize,
        low_rank_dimension: usize,
        seed: u64,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        if low_rank_dimension == 0 || low_rank_dimension > embed_dim {
            return Err(InterventionError::BadHyperparam {
                type_name: "LowRankRotatedSpaceIntervention",
                key: "low_rank_dimension",
                reason: format!("must be in 1..={embed_dim} (embed_dim), got {low_rank_dimension}"),
            });
        }
        Ok(Self {
            embed_dim,
            rank: low_rank_dimension,
            rotation: OrthogonalParam::random(embed_dim, low_rank_dimension, seed, dtype, device)?,
        })
    }

    /// From a given `[d, k]` matrix (e.g. a saved `rotate_layer.weight`).
    pub fn from_rotation(r: &Tensor) -> Result<Self> {
        let (n, k) = r.dims2()?;
        Ok(Self {
            embed_dim: n,
            rank: k,
            rotation: OrthogonalParam::from_tensor(r)?,
        })
    }

    /// The subspace's dimension `k`.
    pub fn low_rank_dimension(&self) -> usize {
        self.rank
    }

    /// The matrix `R` `[d, k]` with orthonormal columns in use.
    pub fn rotation(&self) -> Result<Tensor> {
        self.rotation.matrix()
    }
}

impl Intervention for LowRankRotatedSpaceIntervention {
    fn type_name(&self) -> &'static str {
        "LowRankRotatedSpaceIntervention"
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
            &InterchangeDim::First(self.rank),
            self.rank,
            batch,
            "low-rank subspace",
        )?;
        let r = self.rotation.matrix()?;
        let mut diff = project(&(source - base)?, &r)?;
        if sel != Resolved::Same((0..self.rank).collect()) {
            let mask = sel.mask(self.rank, diff.device())?.to_dtype(diff.dtype())?;
            diff = diff.broadcast_mul(&mask)?;
        }
        let delta = project(&diff, &r.t()?)?;
        Ok((base.to_dtype(delta.dtype())? + delta)?.to_dtype(base.dtype())?)
    }
    fn vars(&self) -> Vec<Var> {
        vec![self.rotation.var().clone()]
    }
    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![
            ("rotate_layer.weight".into(), self.rotation.parameter()),
            embed_dim_entry(self.embed_dim)?,
        ])
    }
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({ "embed_dim": self.embed_dim, "low_rank_dimension": self.rank })
    }
    fn to(&self, placement: &Placement) -> Result<Box<dyn Intervention>> {
        Ok(Box::new(Self {
            rotation: self.rotation.placed(placement)?,
            ..self.clone()
        }))
    }
}
