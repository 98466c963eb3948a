//! The MLP of every family: plain (`down(act(up(x)))`) or gated (`down(act(gate(x)) * up(x))`),
//! with hooks at the activation and the output.

use candle_core::Tensor;
use vene_hooks::{Component, Hooks};

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

fn activate(act: Activation, x: &Tensor) -> Result<Tensor> {
    Ok(match act {
        Activation::GeluTanh => x.gelu()?,
        Activation::Gelu => x.gelu_erf()?,
        Activation::Relu => x.relu()?,
        Activation::Silu => x.silu()?,
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
