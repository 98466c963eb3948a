//! [`Placement`]: where [`Intervention::to`](crate::Intervention::to) puts an intervention's
//! parameters, and in what precision.

use candle_core::{DType, Device, Tensor, Var};

use crate::Result;

/// A target device and dtypes for [`Intervention::to`](crate::Intervention::to); what it leaves
/// unset stays as it is.
///
/// `autoencoder_dtype` is the precision the autoencoder of an autoencoder intervention computes
/// in (mixed precision: a bf16 model with an f32 SAE); unset, it follows `dtype`.
///
/// An implementation of `to` moves each of its tensors with [`Placement::tensor`] (or
/// [`Placement::var`]):
///
/// ```
/// use candle_core::{DType, Device, Tensor};
/// use vene_interventions::Placement;
///
/// let w = Tensor::ones(3, DType::F32, &Device::Cpu)?;
/// let half = Placement::default().with_dtype(DType::F16);
/// assert_eq!(half.tensor(&w)?.dtype(), DType::F16);
/// assert_eq!(Placement::on(&Device::Cpu).tensor(&w)?.dtype(), DType::F32);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Placement {
    device: Option<Device>,
    dtype: Option<DType>,
    autoencoder_dtype: Option<DType>,
}

impl Placement {
    /// To `device`, dtypes unchanged.
    pub fn on(device: &Device) -> Self {
        Self::default().with_device(device)
    }

    /// To `device` with parameters in `dtype`.
    pub fn new(device: &Device, dtype: DType) -> Self {
        Self::on(device).with_dtype(dtype)
    }

    /// Sets the device.
    pub fn with_device(mut self, device: &Device) -> Self {
        self.device = Some(device.clone());
        self
    }

    /// Sets the parameters' dtype.
    pub fn with_dtype(mut self, dtype: DType) -> Self {
        self.dtype = Some(dtype);
        self
    }

    /// Sets the dtype an autoencoder held by the intervention computes in.
    pub fn with_autoencoder_dtype(mut self, dtype: DType) -> Self {
        self.autoencoder_dtype = Some(dtype);
        self
    }

    /// The target device, if one is set.
    pub fn device(&self) -> Option<&Device> {
        self.device.as_ref()
    }

    /// The target dtype of parameters, if one is set.
    pub fn dtype(&self) -> Option<DType> {
        self.dtype
    }

    /// The target dtype of a held autoencoder: `autoencoder_dtype`, else `dtype`.
    pub fn autoencoder_dtype(&self) -> Option<DType> {
        self.autoencoder_dtype.or(self.dtype)
    }

    /// The device and dtype something now on `device` in `dtype` goes to.
    pub fn resolve(&self, device: &Device, dtype: DType) -> (Device, DType) {
        (
            self.device.clone().unwrap_or_else(|| device.clone()),
            self.dtype.unwrap_or(dtype),
        )
    }

    /// [`Self::resolve`] for a held autoencoder (its dtype from [`Self::autoencoder_dtype`]).
    pub fn resolve_autoencoder(&self, device: &Device, dtype: DType) -> (Device, DType) {
        (
            self.device.clone().unwrap_or_else(|| device.clone()),
            self.autoencoder_dtype().unwrap_or(dtype),
        )
    }

    /// `t` moved and cast as this placement says.
    pub fn tensor(&self, t: &Tensor) -> Result<Tensor> {
        let (device, dtype) = self.resolve(t.device(), t.dtype());
        Ok(t.to_device(&device)?.to_dtype(dtype)?)
    }

    /// A trainable copy of `v`, moved and cast as this placement says.
    pub fn var(&self, v: &Var) -> Result<Var> {
        Ok(Var::from_tensor(&self.tensor(v.as_tensor())?)?)
    }
}
