//! Llama MLP: `down(silu(gate(x)) * up(x))`.

use candle_core::Tensor;
use candle_nn::{Linear, Module, VarBuilder};
use vene_hooks::{Component, Hooks};

use crate::weights::{hook, linear_no_bias};
use crate::{LlamaConfig, Result};

#[derive(Debug, Clone)]
pub(crate) struct LlamaMlp {
    gate: Linear,
    up: Linear,
    down: Linear,
    layer: usize,
}

impl LlamaMlp {
    /// A copy with every weight passed through `f`.
    pub(crate) fn map_weights(&self, f: crate::weights::MapWeight<'_>) -> Result<Self> {
        use crate::weights::map_linear;
        Ok(Self {
            gate: map_linear(&self.gate, f)?,
            up: map_linear(&self.up, f)?,
            down: map_linear(&self.down, f)?,
            layer: self.layer,
        })
    }

    pub(crate) fn load(vb: &VarBuilder, cfg: &LlamaConfig, layer: usize, std: f64) -> Result<Self> {
        let (d, ff) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate: linear_no_bias(&vb.pp("gate_proj"), d, ff, std)?,
            up: linear_no_bias(&vb.pp("up_proj"), d, ff, std)?,
            down: linear_no_bias(&vb.pp("down_proj"), ff, d, std)?,
            layer,
        })
    }

    /// `x` is the (hooked) mlp_input; returns the hooked mlp_output.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        offset: usize,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let act = self.gate.forward(x)?.silu()?;
        let act = hook(hooks, self.layer, Component::MlpActivation, offset, act)?;
        let out = self.down.forward(&(act * self.up.forward(x)?)?)?;
        hook(hooks, self.layer, Component::MlpOutput, offset, out)
    }
}
