//! The `vene` subcommands. Each takes its clap arguments and returns the text it prints.

pub mod activation_stream;
pub mod collect;
pub mod dashboard;
pub mod demo;
pub mod eval_sae;
pub mod features;
pub mod patch;
pub mod patch_args;
pub mod sae_releases;
pub mod steer;
pub mod train_sae;
mod train_store;

use candle_core::Tensor;
use vene::hooks::Component;
use vene::models::Model;
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, RepresentationConfig, UnitLocations,
};

use crate::{CliError, Result};

/// The activations of `component` at `layer` for every position of `ids` `[1, T]`: `[T, d]`.
pub fn collect_all(
    model: &Model,
    layer: usize,
    component: Component,
    ids: &Tensor,
) -> Result<Tensor> {
    let t = ids.dim(1)?;
    let repr = RepresentationConfig::new(layer, component)
        .max_number_of_units(t)
        .intervention_type("CollectIntervention");
    let collector = IntervenableModel::new(IntervenableConfig::new(vec![repr]), model.clone())?;
    let positions: Vec<usize> = (0..t).collect();
    let request =
        ForwardRequest::new(ids.clone()).locations(UnitLocations::base(vec![vec![positions]]));
    let out = collector.forward(&request)?;
    let acts = out
        .collected
        .into_iter()
        .next()
        .ok_or_else(|| CliError::invalid("the collect intervention returned nothing"))?;
    Ok(acts.squeeze(0)?)
}
