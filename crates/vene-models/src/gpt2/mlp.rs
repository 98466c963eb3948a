//! GPT-2 MLP: `c_fc` (Conv1D), activation, `c_proj` (Conv1D).

use candle_core::Tensor;
use candle_nn::{Init, VarBuilder};
use vene_hooks::{Component, Hooks};

use crate::ops::conv1d_linear;
use crate::weights::{get, hook, normal};
use crate::{Gpt2Config, ModelError, Result};

/// MLP activation functions GPT-2 configs name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    /// `gelu_new` / `gelu_pytorch_tanh`: tanh approximation.
    GeluTanh,
    /// Exact (erf) gelu.
    Gelu,
    /// ReLU.
    Relu,
    /// SiLU.
    Silu,
}

impl Activation {
    pub(crate) fn parse(name: &str) -> Result<Self> {
        match name {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            "gelu" => Ok(Self::Gelu),
            "relu" => Ok(Self::Relu),
            "silu" | "swish" => Ok(Self::Silu),
            other => Err(ModelError::InvalidConfig(format!(
                "unsupported activation_function '{other}' (supported: gelu_new, gelu_pytorch_tanh, gelu, relu, silu)"
            ))),
        }
    }

    fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::GeluTanh => x.gelu()?,
            Self::Gelu => x.gelu_erf()?,
            Self::Relu => x.relu()?,
            Self::Silu => x.silu()?,
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Gpt2Mlp {
    fc_w: Tensor,
    fc_b: Tensor,
    proj_w: Tensor,
    proj_b: Tensor,
    act: Activation,
    layer: usize,
}

impl Gpt2Mlp {
    pub(crate) fn load(vb: &VarBuilder, cfg: &Gpt2Config, layer: usize) -> Result<Self> {
        let (d, ff) = (cfg.n_embd, cfg.d_ff());
        let std = cfg.initializer_range;
        let proj_std = std / (2.0 * cfg.n_layer as f64).sqrt();
        let fc = vb.pp("c_fc");
        let proj = vb.pp("c_proj");
        Ok(Self {
            fc_w: get(&fc, (d, ff), "weight", normal(std))?,
            fc_b: get(&fc, ff, "bias", Init::Const(0.0))?,
            proj_w: get(&proj, (ff, d), "weight", normal(proj_std))?,
            proj_b: get(&proj, d, "bias", Init::Const(0.0))?,
            act: Activation::parse(&cfg.activation_function)?,
            layer,
        })
    }

    /// A copy with every weight passed through `f`.
    pub(crate) fn map_weights(&self, f: crate::weights::MapWeight<'_>) -> Result<Self> {
        Ok(Self {
            fc_w: f(&self.fc_w)?,
            fc_b: f(&self.fc_b)?,
            proj_w: f(&self.proj_w)?,
            proj_b: f(&self.proj_b)?,
            ..self.clone()
        })
    }

    /// `x` is the (hooked) mlp_input; returns the hooked mlp_output.
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        offset: usize,
        hooks: &mut dyn Hooks,
    ) -> Result<Tensor> {
        let h = conv1d_linear(x, &self.fc_w, &self.fc_b)?;
        let h = self.act.apply(&h)?;
        let h = hook(hooks, self.layer, Component::MlpActivation, offset, h)?;
        let out = conv1d_linear(&h, &self.proj_w, &self.proj_b)?;
        hook(hooks, self.layer, Component::MlpOutput, offset, out)
    }
}
