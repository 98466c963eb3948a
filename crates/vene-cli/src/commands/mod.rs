//! The `vene` subcommands. Each takes its clap arguments and returns the text it prints.

pub mod activation_stream;
pub mod collect;
mod collect_input;
pub mod dashboard;
pub mod demo;
pub mod eval_sae;
pub mod features;
pub mod patch;
pub mod patch_args;
pub mod sae_releases;
mod site_collector;
pub mod steer;
pub mod train_sae;
mod train_store;

use candle_core::Tensor;
use vene::hooks::{Component, Site};
use vene::models::Model;

pub use site_collector::SiteCollector;

use crate::Result;

/// The activations of `component` at `layer` for every position of `ids` `[1, T]`: `[T, d]`.
pub fn collect_all(
    model: &Model,
    layer: usize,
    component: Component,
    ids: &Tensor,
) -> Result<Tensor> {
    let ids: Vec<u32> = ids.squeeze(0)?.to_vec1()?;
    let collector = SiteCollector::new(model, &[Site::new(layer, component)], ids.len())?;
    let (mut collected, _) = collector.forward(&[ids])?;
    Ok(collected.remove(0).squeeze(0)?)
}
