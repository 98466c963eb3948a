//! `BoundlessRotatedSpaceIntervention`: a rotation with a learned soft boundary.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::ops::sigmoid;

use crate::orthogonal::OrthogonalParam;
use crate::rotated::{in_rotated_basis, square_rotation};
use crate::state::{embed_dim_entry, temperature_entry};
use crate::swap::{blend, check_base, required_source};
use crate::{Intervention, Placement, Result, Selection, Temperature};

/// Boundless DAS (pyvene's `BoundlessRotatedSpaceIntervention`): in the rotated basis,
/// `((1 - m) * rb + m * rs) @ Rᵀ` with the soft boundary mask
/// `m_i = sigmoid(i / T) * sigmoid((b * d - i) / T)`, `b = clamp(boundary, 1e-3, 1)`.
///
/// Trainable: the rotation and `boundary` (init 0.5). The temperature `T` (init 50, as in
/// pyvene) is a setting, annealed by the user with [`Self::set_temperature`]. The selection
/// is ignored, as in pyvene.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_interventions::{BoundlessRotatedSpaceIntervention, Intervention, Selection};
///
/// let iv = BoundlessRotatedSpaceIntervention::new(8, 0, DType::F32, &Device::Cpu)?;
/// let x = Tensor::ones((2, 1, 8), DType::F32, &Device::Cpu)?;
/// // Same base and source: the output is the base, whatever the mask.
/// let out = iv.forward(&x, Some(&x), &Selection::Default)?;
/// assert!((out - &x)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? < 1e-5);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct BoundlessRotatedSpaceIntervention {
    embed_dim: usize,
    rotation: OrthogonalParam,
    boundary: Var,
    temperature: Temperature,
}

impl BoundlessRotatedSpaceIntervention {
    /// A random rotation of width `embed_dim` (seeded), boundary 0.5, temperature 50.
    pub fn new(embed_dim: usize, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            embed_dim,
            rotation: OrthogonalParam::random(embed_dim, embed_dim, seed, dtype, device)?,
            boundary: Var::from_tensor(&Tensor::new(&[0.5f32], device)?.to_dtype(dtype)?)?,
            temperature: Temperature::new(50.0)?,
        })
    }

    /// From a rotation `[d, d]`, a boundary and a temperature (e.g. saved ones).
    pub fn from_parts(rotation: &Tensor, boundary: f64, temperature: f64) -> Result<Self> {
        let (n, param) = square_rotation(rotation)?;
        let b = Tensor::new(&[boundary], rotation.device())?.to_dtype(rotation.dtype())?;
        Ok(Self {
            embed_dim: n,
            rotation: param,
            boundary: Var::from_tensor(&b)?,
            temperature: Temperature::new(temperature)?,
        })
    }

    /// Sets the temperature `T` of the boundary sigmoids (finite and > 0; through `&self`, so also on an
    /// intervention shared inside an intervenable model).
    pub fn set_temperature(&self, temperature: f64) -> Result<()> {
        self.temperature.set(temperature)
    }

    /// The temperature `T`.
    pub fn temperature(&self) -> f64 {
        self.temperature.get()
    }

    /// Sets the boundary `b` (pyvene's `set_intervention_boundaries`).
    pub fn set_boundary(&mut self, boundary: f64) -> Result<()> {
        let t =
            Tensor::new(&[boundary], self.boundary.device())?.to_dtype(self.boundary.dtype())?;
        self.boundary.set(&t)?;
        Ok(())
    }

    /// The boundary mask `m` `[d]` (differentiable in the boundary).
    pub fn mask(&self) -> Result<Tensor> {
        let dtype = self.boundary.dtype();
        let dev = self.boundary.device();
        let n = self.embed_dim;
        let pop = Tensor::arange(0u32, n as u32, dev)?.to_dtype(dtype)?;
        let b = self.boundary.as_tensor().clamp(1e-3, 1.0)?;
        let upper = (b * n as f64)?.broadcast_sub(&pop)?;
        let left = sigmoid(&(&pop / self.temperature.get())?)?;
        let right = sigmoid(&(upper / self.temperature.get())?)?;
        Ok((left * right)?)
    }
}

impl Intervention for BoundlessRotatedSpaceIntervention {
    fn type_name(&self) -> &'static str {
        "BoundlessRotatedSpaceIntervention"
    }
    fn embed_dim(&self) -> usize {
        self.embed_dim
    }
    fn forward(
        &self,
        base: &Tensor,
        source: Option<&Tensor>,
        _selection: &Selection,
    ) -> Result<Tensor> {
        check_base(base, self.embed_dim)?;
        let source = required_source(self.type_name(), base, source)?;
        in_rotated_basis(&self.rotation, base, &source, |rb, rs| {
            blend(rb, rs, &self.mask()?.to_dtype(rb.dtype())?)
        })
    }
    fn temperature(&self) -> Option<f64> {
        Some(self.temperature.get())
    }
    fn set_temperature(&self, temperature: f64) -> Result<()> {
        self.temperature.set(temperature)
    }
    fn vars(&self) -> Vec<Var> {
        vec![self.rotation.var().clone(), self.boundary.clone()]
    }
    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![
            ("rotate_layer.weight".into(), self.rotation.parameter()),
            (
                "intervention_boundaries".into(),
                self.boundary.as_tensor().clone(),
            ),
            temperature_entry(self.temperature.get())?,
            (
                "intervention_population".into(),
                Tensor::arange(0i64, self.embed_dim as i64, &Device::Cpu)?,
            ),
            embed_dim_entry(self.embed_dim)?,
        ])
    }
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({ "embed_dim": self.embed_dim, "temperature": self.temperature.get() })
    }
    fn to(&self, placement: &Placement) -> Result<Box<dyn Intervention>> {
        Ok(Box::new(Self {
            rotation: self.rotation.placed(placement)?,
            boundary: placement.var(&self.boundary)?,
            ..self.clone()
        }))
    }
}
