//! The `vene` command line and the helpers vene's examples share.
//!
//! - [`toy`]: seeded toy models (a random GPT-2, an autoencoder) for examples and tests.
//! - [`CliError`]: every error a command can meet, printed by the binary on one line.

mod error;
pub mod toy;

pub use error::{CliError, Result};
