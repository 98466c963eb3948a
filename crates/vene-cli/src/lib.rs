//! The `vene` command line and the helpers vene's examples share.
//!
//! - [`commands`]: `features`, `patch`, `steer`, `train-sae`, `eval-sae`, `dashboard`,
//!   `sae-releases`, `demo`; each returns the text it prints.
//! - [`demo`]: a model, an SAE and a corpus made on the spot (offline), for `vene demo` and
//!   the examples.
//! - [`backend`]: `--device` / `--dtype` / `--sae-dtype`, shared by commands and examples.
//! - [`bos`]: `--prepend-bos` / `--no-prepend-bos`, shared by the commands that tokenize.
//! - [`load`]: a model with its tokenizer, an SAE from a folder or the hub.
//! - [`sae_args`]: `--sae` or `--sae-release` / `--sae-id`, shared by the commands that read an
//!   SAE.
//! - [`sae_on_text`]: the model / SAE / site / text arguments of `eval-sae` and `dashboard`.
//! - [`table`]: aligned text tables.
//! - [`dashboard`]: static HTML pages of SAE latents (`vene dashboard`).
//! - [`plots`]: pictures (PNG or SVG): feature density, patching heat map, training curves.
//! - [`progress`]: progress bars on stderr (drawn only on a terminal).
//! - [`CliError`]: every error a command can meet, printed by the binary on one line.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod backend;
pub mod bos;
pub mod commands;
pub mod dashboard;
pub mod demo;
mod error;
pub mod load;
pub mod plots;
pub mod progress;
pub mod sae_args;
pub mod sae_on_text;
pub mod table;

pub use error::{CliError, Result};
