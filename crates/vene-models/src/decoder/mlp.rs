//! The MLP of every family: plain (`down(act(up(x)))`) or gated (`down(act(gate(x)) * up(x))`),
//! with hooks at the activation and the output.

use candle_core::Tensor;
use vene_hooks::{Component, Hooks};

use super::kernels::kernel_error;
use super::linear::Linear;
use super::spec::Activation;
use crate::weights::hook;
use crate::Result;

/// One layer's MLP.
#[derive(Debug, Clone)]
pub(crate) struct Mlp {
    pub up: Linear,
    pub gate: Option<Linear>,
    pub down: Linear,
    pub activation: Activation,
    pub layer: usize,
}

/// The activation (vene-kernels' vectorised CPU kernels for f32, candle's ops otherwise).
fn activate(act: Activation, x: &Tensor) -> Result<Tensor> {
    Ok(match act {
        Activation::GeluTanh => vene_kernels::gelu_tanh(x).map_err(kernel_error)?,
        Activation::Gelu => vene_kernels::gelu_erf(x).map_err(kernel_error)?,
        Activation::Relu => x.relu()?,
        Activation::Silu => vene_kernels::silu(x).map_err(kernel_error)?,
    })
}

impl Mlp {
    /// `x` is the (hooked) mlp_input; returns the hooked mlp_output.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        offset: usize,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let l = self.layer;
        let h = match &self.gate {
            None => {
                let a = activate(self.activation, &self.up.forward(x)?)?;
                hook(hooks, l, Component::MlpActivation, offset, a)?
            }
            Some(gate) => {
                let a = activate(self.activation, &gate.forward(x)?)?;
                let a = hook(hooks, l, Component::MlpActivation, offset, a)?;
                (a * self.up.forward(x)?)?
            }
        };
        let out = self.down.forward(&h)?;
        hook(hooks, l, Component::MlpOutput, offset, out)
    }

    pub(crate) fn map(&self, f: &dyn Fn(&Tensor) -> Result<Tensor>) -> Result<Self> {
        Ok(Self {
            up: self.up.map(f)?,
            gate: self.gate.as_ref().map(|g| g.map(f)).transpose()?,
            down: self.down.map(f)?,
            activation: self.activation,
            layer: self.layer,
        })
    }
}
