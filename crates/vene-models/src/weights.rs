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
