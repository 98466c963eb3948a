//! `NoiseIntervention`: fixed Gaussian noise added to the base.

use candle_core::{DType, Device, Tensor};

use crate::rng::NumpyRandomState;
use crate::selection::{InterchangeDim, Resolved};
use crate::state::embed_dim_entry;
use crate::swap::{check_base, combine, Op};
use crate::{Intervention, InterventionError, Placement, Result, Selection};

/// pyvene's default noise level.
pub const DEFAULT_NOISE_LEVEL: f32 = 0.134_629_82;

/// `base[sel] += noise * level` (pyvene's `NoiseIntervention`).
///
/// As in pyvene, the noise is a fixed buffer of `[units, d]` standard normals drawn from
/// numpy `RandomState(seed)` (pyvene: seed 1, 4 units, level 0.13462981581687927, all of
/// which can be changed here), added to unit `i` of every example, computed in f64 and cast
/// back. pyvene's buffer only broadcasts when the intervention sees exactly 4 units; here a
/// call with `n_units <= units` uses the first `n_units` rows (the same numbers pyvene would
/// use for those units) and more units than rows is an error.
#[derive(Debug, Clone)]
pub struct NoiseIntervention {
    embed_dim: usize,
    interchange_dim: InterchangeDim,
    noise: Tensor,
    level: f32,
    seed: u32,
}

impl NoiseIntervention {
    /// pyvene's noise: seed 1, 4 units, level [`DEFAULT_NOISE_LEVEL`].
    pub fn new(embed_dim: usize) -> Result<Self> {
        Self::with_seed(embed_dim, 1, 4, DEFAULT_NOISE_LEVEL)
    }

    /// Noise of `units` rows from numpy `RandomState(seed)`, scaled by `level`.
    pub fn with_seed(embed_dim: usize, seed: u32, units: usize, level: f32) -> Result<Self> {
        crate::state::check_new_size("NoiseIntervention", "units", &[units, embed_dim])?;
        let data = NumpyRandomState::new(seed).randn(units * embed_dim);
        Ok(Self {
            embed_dim,
            interchange_dim: InterchangeDim::First(embed_dim),
            noise: Tensor::from_vec(data, (units, embed_dim), &Device::Cpu)?,
            level,
            seed,
        })
    }

    /// From a saved noise buffer (`[units, d]` or pyvene's `[1, units, d]`) and level.
    pub fn from_noise(noise: &Tensor, level: f32) -> Result<Self> {
        let noise = match noise.dims() {
            [1, _, _] => noise.squeeze(0)?,
            [_, _] => noise.clone(),
            got => {
                return Err(InterventionError::Shape {
                    what: "noise",
                    expected: "[units, d] or [1, units, d]".into(),
                    got: got.to_vec(),
                })
            }
        };
        let noise = noise.to_device(&Device::Cpu)?.to_dtype(DType::F64)?;
        Ok(Self {
            embed_dim: noise.dim(1)?,
            interchange_dim: InterchangeDim::First(noise.dim(1)?),
            noise,
            level,
            seed: 1,
        })
    }

    /// Sets the default dims; checked against `embed_dim`.
    pub fn set_interchange_dim(&mut self, dims: impl Into<InterchangeDim>) -> Result<()> {
        let dims = dims.into();
        dims.resolve(self.embed_dim, "representation")?;
        self.interchange_dim = dims;
        Ok(())
    }

    /// Adds noise to the first `k` dims only by default.
    pub fn with_interchange_dim(mut self, k: usize) -> Self {
        self.interchange_dim = InterchangeDim::First(k);
        self
    }

    /// Records the seed the buffer was drawn from (for a buffer read back from a save).
    pub(crate) fn set_seed(&mut self, seed: u32) {
        self.seed = seed;
    }

    /// The noise buffer `[units, d]` (f64).
    pub fn noise(&self) -> &Tensor {
        &self.noise
    }

    /// The noise level.
    pub fn level(&self) -> f32 {
        self.level
    }
}

impl Intervention for NoiseIntervention {
    /// The noise buffer itself: it may not come from a seed (a pyvene save).
    fn saves_state(&self) -> bool {
        true
    }
    fn type_name(&self) -> &'static str {
        "NoiseIntervention"
    }
    fn embed_dim(&self) -> usize {
        self.embed_dim
    }
    fn forward(
        &self,
        base: &Tensor,
        _source: Option<&Tensor>,
        selection: &Selection,
    ) -> Result<Tensor> {
        let batch = check_base(base, self.embed_dim)?;
        let n_units = base.dim(1)?;
        let rows = self.noise.dim(0)?;
        if n_units > rows {
            return Err(InterventionError::Shape {
                what: "base (NoiseIntervention)",
                expected: format!("at most {rows} units (rows of the noise buffer)"),
                got: base.dims().to_vec(),
            });
        }
        let sel = Resolved::new(
            selection,
            &self.interchange_dim,
            self.embed_dim,
            batch,
            "representation",
        )?;
        let noise = (self.noise.narrow(0, 0, n_units)?.to_device(base.device())?
            * f64::from(self.level))?
        .unsqueeze(0)?
        .broadcast_as(base.shape())?;
        let base64 = base.to_dtype(DType::F64)?;
        Ok(combine(&base64, &noise.contiguous()?, &sel, Op::Add)?.to_dtype(base.dtype())?)
    }
    fn needs_source(&self) -> bool {
        false
    }
    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        let dev = Device::Cpu;
        Ok(vec![
            ("noise".into(), self.noise.unsqueeze(0)?),
            ("noise_level".into(), Tensor::new(self.level, &dev)?),
            embed_dim_entry(self.embed_dim)?,
            (
                "interchange_dim".into(),
                self.interchange_dim.to_tensor(&dev)?,
            ),
        ])
    }
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({
            "embed_dim": self.embed_dim,
            "interchange_dim": self.interchange_dim,
            "noise_level": self.level,
            "seed": self.seed,
            "units": self.noise.dim(0).unwrap_or(0),
        })
    }
    fn to(&self, _placement: &Placement) -> Result<Box<dyn Intervention>> {
        // The buffer is moved to the base's device at each call, and the noise is added in
        // f64 and cast to the base's dtype, as in pyvene: nothing to move here.
        Ok(Box::new(self.clone()))
    }
}
