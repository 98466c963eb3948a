//! Reading weights from a `VarBuilder` with typed errors.

use candle_core::{Shape, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::{ModelError, Result};

/// Gets `name` (under `vb`'s prefix) with the given shape; on a var map, creates it with `init`.
pub(crate) fn get(
    vb: &VarBuilder,
    shape: impl Into<Shape>,
    name: &str,
    init: Init,
) -> Result<Tensor> {
    vb.get_with_hints(shape, name, init)
        .map_err(|e| ModelError::from_weight_error(e, "the weights"))
}

/// Normal init with the given std.
pub(crate) fn normal(std: f64) -> Init {
    Init::Randn {
        mean: 0.0,
        stdev: std,
    }
}

/// A layer norm (`weight`, `bias`) of width `d`.
pub(crate) fn layer_norm(vb: &VarBuilder, d: usize, eps: f64) -> Result<candle_nn::LayerNorm> {
    let w = get(vb, d, "weight", Init::Const(1.0))?;
    let b = get(vb, d, "bias", Init::Const(0.0))?;
    Ok(candle_nn::LayerNorm::new(w, b, eps))
}

/// An RMS norm (`weight`) of width `d`.
pub(crate) fn rms_norm(vb: &VarBuilder, d: usize, eps: f64) -> Result<candle_nn::RmsNorm> {
    let w = get(vb, d, "weight", Init::Const(1.0))?;
    Ok(candle_nn::RmsNorm::new(w, eps))
}

/// A bias-free linear layer (weight `[out, in]`).
pub(crate) fn linear_no_bias(
    vb: &VarBuilder,
    d_in: usize,
    d_out: usize,
    std: f64,
) -> Result<candle_nn::Linear> {
    let w = get(vb, (d_out, d_in), "weight", normal(std))?;
    Ok(candle_nn::Linear::new(w, None))
}

/// How a model's weights are moved by [`crate::LanguageModel::to`]: each weight tensor is
/// passed through it (`to_device` then `to_dtype`).
pub(crate) type MapWeight<'a> = &'a dyn Fn(&Tensor) -> candle_core::Result<Tensor>;

/// `f` applied to the weight of an embedding.
pub(crate) fn map_embedding(
    e: &candle_nn::Embedding,
    f: MapWeight<'_>,
) -> Result<candle_nn::Embedding> {
    Ok(candle_nn::Embedding::new(
        f(e.embeddings())?,
        e.hidden_size(),
    ))
}

/// `f` applied to the weight and bias of a layer norm.
pub(crate) fn map_layer_norm(
    n: &candle_nn::LayerNorm,
    f: MapWeight<'_>,
) -> Result<candle_nn::LayerNorm> {
    let w = f(n.weight())?;
    Ok(match n.bias() {
        Some(b) => candle_nn::LayerNorm::new(w, f(b)?, n.eps()),
        None => candle_nn::LayerNorm::new_no_bias(w, n.eps()),
    })
}

/// `f` applied to the weight of an RMS norm.
pub(crate) fn map_rms_norm(n: &candle_nn::RmsNorm, f: MapWeight<'_>) -> Result<candle_nn::RmsNorm> {
    Ok(candle_nn::RmsNorm::new(f(n.weight())?, n.eps()))
}

/// `f` applied to the weight and bias of a linear layer.
pub(crate) fn map_linear(l: &candle_nn::Linear, f: MapWeight<'_>) -> Result<candle_nn::Linear> {
    let b = l.bias().map(f).transpose()?;
    Ok(candle_nn::Linear::new(f(l.weight())?, b))
}

/// Calls the hook of `layer`/`component` and continues with what it returns.
#[inline]
pub(crate) fn hook(
    hooks: &mut dyn vene_hooks::Hooks,
    layer: usize,
    component: vene_hooks::Component,
    offset: usize,
    x: Tensor,
) -> Result<Tensor> {
    Ok(vene_hooks::apply_hook(
        hooks,
        vene_hooks::Site::new(layer, component),
        offset,
        x,
    )?)
}
