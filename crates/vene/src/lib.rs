//! vene: causal interventions on transformer internals (a Rust pyvene), with first-class
//! autoencoder / SAE interventions.
//!
//! - [`IntervenableConfig`] / [`RepresentationConfig`]: where to intervene (layer, component,
//!   unit) and with what (pyvene's intervention type names), serde JSON with pyvene's defaults.
//! - [`IntervenableModel`]: a model with those interventions; [`IntervenableModel::forward`]
//!   runs the sources and the intervened base ([`ForwardRequest`], [`UnitLocations`],
//!   [`Subspaces`]).
//! - [`Splice`] / [`run_with_saes`]: SAEs (and transcoders) spliced into a forward pass;
//!   [`eval_sae`]: how much of the model's loss an SAE keeps (SAELens's evals).
//!
//! The crates underneath are re-exported: [`hooks`], [`autoencoder`], [`kernels`],
//! [`interventions`], [`models`].

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use vene_autoencoder as autoencoder;
pub use vene_hooks as hooks;
pub use vene_interventions as interventions;
pub use vene_kernels as kernels;
pub use vene_models as models;

mod alignment;
mod autoencoder_helper;
mod config;
mod error;
mod eval_sae;
mod forward;
mod generate;
mod hooks_impl;
mod intervenable;
mod load_pyvene;
mod locations;
mod padding;
mod save;
mod save_intervention;
mod save_pyvene;
mod shared_prefix;
mod source_prefix;
mod splice;
mod subspaces;
mod torch_orthogonal;
mod train;
mod transcoder_interchange;

pub use alignment::{AlignmentBatch, AlignmentOptions, AlignmentReport, EpochReport};
pub use autoencoder_helper::{
    get_intervenable_with_autoencoder, get_intervenable_with_custom_autoencoder,
    get_intervenable_with_sae,
};
pub use config::{IntervenableConfig, Mode, RepresentationConfig, FORMAT_VERSION};
pub use error::{Result, VeneError};
pub use eval_sae::{eval_sae, SaeEvalOptions, SaeEvalReport};
pub use forward::{ForwardOutput, ForwardRequest, Input};
pub use generate::{InterveneOn, MAX_NEW_TOKENS};
pub use intervenable::IntervenableModel;
pub use load_pyvene::{module_path_component, pyvene_type_name};
pub use locations::{LocSpec, UnitLoc, UnitLocations};
pub use padding::PaddedBatch;
pub use save::{state_file_name, SaveOptions};
pub use save_pyvene::{pyvene_state_file_name, PYVENE_TRANSFORMERS_VERSION};
pub use splice::{
    run_with_saes, sae_site, sae_sites, LatentEdit, Splice, SpliceHooks, SpliceRecord,
};
pub use subspaces::Subspaces;
pub use train::last_position_cross_entropy;
pub use transcoder_interchange::transcoder_interchange;
pub use vene_models::LogitsAt;

/// The README's code blocks, compiled as doctests so the README cannot drift from the API.
#[doc = include_str!("../../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// docs/porting-from-pyvene.md's snippets, compiled and run as doctests.
#[doc = include_str!("../../../docs/porting-from-pyvene.md")]
#[cfg(doctest)]
pub struct PortingGuideDoctests;
