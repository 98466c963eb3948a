//! Interventions for vene: the [`Intervention`] trait and every built-in intervention type
//! (pyvene's names), with first-class autoencoder / SAE interventions.
//!
//! An intervention receives the gathered units of a component, `base` `[B, n_units, d]`, and
//! optionally a `source` (a source run's units `[B, n_units, d]`, or a constant `[d]`), and
//! returns the intervened `[B, n_units, d]`. A [`Selection`] per call overrides the dims it acts
//! on (pyvene's `subspaces`, after the facade applied any `subspace_partition`).
//!
//! | type | output |
//! |---|---|
//! | [`VanillaIntervention`] / [`AdditionIntervention`] / [`SubtractionIntervention`] | `base[sel] = / += / -= source[sel]` |
//! | [`ZeroIntervention`], [`CollectIntervention`], [`SkipIntervention`], [`NoiseIntervention`] | zero, collect, input, noise |
//! | [`RotatedSpaceIntervention`], [`LowRankRotatedSpaceIntervention`] | swap in a learned (low-rank) orthogonal basis |
//! | [`BoundlessRotatedSpaceIntervention`], [`SigmoidMaskRotatedSpaceIntervention`], [`SigmoidMaskIntervention`] | learned soft masks |
//! | [`AutoencoderIntervention`], [`JumpReLUAutoencoderIntervention`] | swap of selected latents of an autoencoder |
//! | [`PCARotatedSpaceIntervention`] | swap in the basis of a PCA fitted to given activations |
//!
//! [`build_intervention`] rebuilds any of them from a type name, hyperparameters and a state
//! dict (for load).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod autoencoder;
mod boundless;
mod build;
mod call_args;
mod error;
mod intervention;
mod jumprelu;
mod low_rank;
mod noise;
mod orthogonal;
mod pca;
mod placement;
mod registry;
mod rng;
mod rotated;
mod selection;
mod sigmoid_mask;
mod state;
mod swap;
mod temperature;
mod vanilla;

pub use autoencoder::{AutoencoderIntervention, AutoencoderMode};
pub use boundless::BoundlessRotatedSpaceIntervention;
pub use build::{build_intervention, needs_saved_state, parse_type_name, TYPE_NAMES};
pub use call_args::CallArgs;
pub use error::{InterventionError, Result};
pub use intervention::{Intervention, Selection};
pub use jumprelu::JumpReLUAutoencoderIntervention;
pub use low_rank::LowRankRotatedSpaceIntervention;
pub use noise::{NoiseIntervention, DEFAULT_NOISE_LEVEL};
pub use orthogonal::OrthogonalParam;
pub use pca::{PCARotatedSpaceIntervention, PcaFitOptions};
pub use placement::Placement;
pub use registry::{
    register_intervention, registered_interventions, BuildArgs, InterventionConstructor,
};
pub use rotated::RotatedSpaceIntervention;
pub use selection::{InterchangeDim, Resolved};
pub use sigmoid_mask::{SigmoidMaskIntervention, SigmoidMaskRotatedSpaceIntervention};
pub use temperature::{Temperature, TemperatureSchedule};
pub use vanilla::{
    AdditionIntervention, CollectIntervention, SkipIntervention, SubtractionIntervention,
    VanillaIntervention, ZeroIntervention,
};
