//! Sigmoid-masked blends: `SigmoidMaskRotatedSpaceIntervention` and `SigmoidMaskIntervention`.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::ops::sigmoid;

use crate::orthogonal::OrthogonalParam;
use crate::rotated::in_rotated_basis;
use crate::state::{embed_dim_entry, temperature_entry};
use crate::swap::{blend, check_base, required_source};
use crate::{Intervention, InterventionError, Placement, Result, Selection, Temperature};

fn mask_var(values: f32, n: usize, dtype: DType, device: &Device) -> Result<Var> {
    let t = Tensor::full(values, n, device)?.to_dtype(dtype)?;
    Ok(Var::from_tensor(&t)?)
}

fn check_mask(what: &'static str, mask: &Tensor) -> Result<usize> {
    match mask.dims() {
        [n] => Ok(*n),
        got => Err(InterventionError::Shape {
            what,
            expected: "[embed_dim]".into(),
            got: got.to_vec(),
        }),
    }
}

/// `(1 - m) * b + m * s` with `m = sigmoid(mask / T)` broadcast over `[B, n, d]`.
fn sigmoid_blend(b: &Tensor, s: &Tensor, mask: &Tensor, temperature: f64) -> Result<Tensor> {
    let m = sigmoid(&(mask / temperature)?)?.to_dtype(b.dtype())?;
    blend(b, s, &m)
}

/// In a learned rotated basis, a per-dim soft mask (pyvene's
/// `SigmoidMaskRotatedSpaceIntervention`): `((1 - m) * rb + m * rs) @ Rᵀ`,
/// `m = sigmoid(masks / T)`.
///
/// Trainable: the rotation and `masks` `[d]` (init 100, so `m` ≈ 0.88 at `T` = 50, as in
/// pyvene). The temperature `T` (init 50) is a setting. The selection is ignored.
#[derive(Debug, Clone)]
pub struct SigmoidMaskRotatedSpaceIntervention {
    embed_dim: usize,
    rotation: OrthogonalParam,
    masks: Var,
    temperature: Temperature,
}

impl SigmoidMaskRotatedSpaceIntervention {
    /// A random rotation (seeded), masks 100, temperature 50.
    pub fn new(embed_dim: usize, seed: u64, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            embed_dim,
            rotation: OrthogonalParam::random(embed_dim, embed_dim, seed, dtype, device)?,
            masks: mask_var(100.0, embed_dim, dtype, device)?,
            temperature: Temperature::new(50.0)?,
        })
    }

    /// From a rotation `[d, d]`, masks `[d]` and a temperature.
    pub fn from_parts(rotation: &Tensor, masks: &Tensor, temperature: f64) -> Result<Self> {
        let n = check_mask("masks", masks)?;
        if rotation.dims() != [n, n] {
            return Err(InterventionError::Shape {
                what: "rotate_layer.weight",
                expected: format!("[{n}, {n}] (masks has {n} entries)"),
                got: rotation.dims().to_vec(),
            });
        }
        Ok(Self {
            embed_dim: n,
            rotation: OrthogonalParam::from_tensor(rotation)?,
            masks: Var::from_tensor(&masks.to_dtype(rotation.dtype())?)?,
            temperature: Temperature::new(temperature)?,
        })
    }

    /// Sets the temperature `T` (finite and > 0; through `&self`, so also on an
    /// intervention shared inside an intervenable model).
    pub fn set_temperature(&self, temperature: f64) -> Result<()> {
        self.temperature.set(temperature)
    }
}

impl Intervention for SigmoidMaskRotatedSpaceIntervention {
    fn type_name(&self) -> &'static str {
        "SigmoidMaskRotatedSpaceIntervention"
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
            sigmoid_blend(rb, rs, self.masks.as_tensor(), self.temperature.get())
        })
    }
    fn temperature(&self) -> Option<f64> {
        Some(self.temperature.get())
    }
    fn set_temperature(&self, temperature: f64) -> Result<()> {
        self.temperature.set(temperature)
    }
    fn vars(&self) -> Vec<Var> {
        vec![self.rotation.var().clone(), self.masks.clone()]
    }
    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![
            ("rotate_layer.weight".into(), self.rotation.parameter()),
            ("masks".into(), self.masks.as_tensor().clone()),
            temperature_entry(self.temperature.get())?,
            embed_dim_entry(self.embed_dim)?,
        ])
    }
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({ "embed_dim": self.embed_dim, "temperature": self.temperature.get() })
    }
    fn to(&self, placement: &Placement) -> Result<Box<dyn Intervention>> {
        Ok(Box::new(Self {
            rotation: self.rotation.placed(placement)?,
            masks: placement.var(&self.masks)?,
            ..self.clone()
        }))
    }
}

/// A per-dim soft mask in the original basis (pyvene's `SigmoidMaskIntervention`):
/// `(1 - m) * base + m * source`, `m = sigmoid(mask / T)`.
///
/// Trainable: `mask` `[d]` (init 0, so `m` = 0.5). The temperature (init 0.01, as in
/// pyvene) is a setting. The selection is ignored.
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_interventions::{Intervention, Selection, SigmoidMaskIntervention};
///
/// let iv = SigmoidMaskIntervention::new(2, DType::F32, &Device::Cpu)?;
/// let base = Tensor::new(&[[[0f32, 2.]]], &Device::Cpu)?;
/// let source = Tensor::new(&[[[4f32, 4.]]], &Device::Cpu)?;
/// let out = iv.forward(&base, Some(&source), &Selection::Default)?;
/// assert_eq!(out.flatten_all()?.to_vec1::<f32>()?, vec![2., 3.]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SigmoidMaskIntervention {
    embed_dim: usize,
    mask: Var,
    temperature: Temperature,
}

impl SigmoidMaskIntervention {
    /// Mask 0, temperature 0.01.
    pub fn new(embed_dim: usize, dtype: DType, device: &Device) -> Result<Self> {
        Ok(Self {
            embed_dim,
            mask: mask_var(0.0, embed_dim, dtype, device)?,
            temperature: Temperature::new(0.01)?,
        })
    }

    /// From a mask `[d]` and a temperature.
    pub fn from_parts(mask: &Tensor, temperature: f64) -> Result<Self> {
        let n = check_mask("mask", mask)?;
        Ok(Self {
            embed_dim: n,
            mask: Var::from_tensor(mask)?,
            temperature: Temperature::new(temperature)?,
        })
    }

    /// Sets the temperature `T` (finite and > 0; through `&self`, so also on an
    /// intervention shared inside an intervenable model).
    pub fn set_temperature(&self, temperature: f64) -> Result<()> {
        self.temperature.set(temperature)
    }
}

impl Intervention for SigmoidMaskIntervention {
    fn type_name(&self) -> &'static str {
        "SigmoidMaskIntervention"
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
        sigmoid_blend(base, &source, self.mask.as_tensor(), self.temperature.get())
    }
    fn temperature(&self) -> Option<f64> {
        Some(self.temperature.get())
    }
    fn set_temperature(&self, temperature: f64) -> Result<()> {
        self.temperature.set(temperature)
    }
    fn vars(&self) -> Vec<Var> {
        vec![self.mask.clone()]
    }
    fn state_dict(&self) -> Result<Vec<(String, Tensor)>> {
        Ok(vec![
            ("mask".into(), self.mask.as_tensor().clone()),
            temperature_entry(self.temperature.get())?,
            embed_dim_entry(self.embed_dim)?,
        ])
    }
    fn hyperparams(&self) -> serde_json::Value {
        serde_json::json!({ "embed_dim": self.embed_dim, "temperature": self.temperature.get() })
    }
    fn to(&self, placement: &Placement) -> Result<Box<dyn Intervention>> {
        Ok(Box::new(Self {
            mask: placement.var(&self.mask)?,
            ..self.clone()
        }))
    }
}
