//! Intervention points for vene.
//!
//! - [`Component`] and [`Site`]: where in a model an intervention acts, by pyvene's names;
//!   [`site_from_name`] / [`transformer_lens_name`] for TransformerLens / SAELens hook names,
//!   Hugging Face module paths and dictionary_learning names.
//! - [`ActivationCache`] and [`CacheHooks`]: the activations of one forward pass, by site.
//! - [`Hooks`]: the trait a model calls at every site ([`apply_hook`]); [`NoHooks`] for a plain
//!   forward pass.
//! - [`HookableModel`]: what a model tells about its sites (layers, widths, heads).
//! - [`Unit`] and gather/scatter of positions and heads per example, with bounds checks that
//!   name the offending example and index; [`gather_attention_rows`] for `attention_weight`.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attention_rows;
mod cache;
mod component;
mod error;
mod hooks;
mod site_names;
mod units;

pub use attention_rows::{gather_attention_rows, scatter_attention_rows};
pub use cache::{ActivationCache, CacheHooks};
pub use component::{Component, Site};
pub use error::{HookError, Result};
pub use hooks::{apply_hook, ComponentShape, HookCall, HookableModel, Hooks, NoHooks};
pub use site_names::{site_from_name, transformer_lens_name};
pub use units::{
    gather_head_positions, gather_positions, merge_heads, scatter_head_positions,
    scatter_positions, split_heads, HeadPositions, Unit,
};
