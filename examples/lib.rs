//! vene's runnable examples, each a `cargo run` away and offline by default (on a seeded tiny
//! GPT-2 and the files `vene demo` writes); `--model` and `--sae` run them on real models.
//!
//! | example | what it shows |
//! |---|---|
//! | `autoencoder_tutorial` | the main tutorial (docs/tutorial.md): train an SAE, find the latents that carry an attribute, interchange them (RAVEL-style cause/isolation scores) |
//! | `collect` | collect a component's activations |
//! | `patching` | activation patching over layers and positions (with `--plot`, a heat map) |
//! | `steering` | steering with an SAE latent's decoder direction |
//! | `das` | distributed alignment search: train a rotated subspace |
//!
//! ```text
//! cargo run -p vene-examples --example autoencoder_tutorial
//! cargo test -p vene-examples --examples      # each example's tests
//! ```
//!
//! This library holds nothing itself: the examples use the facade (`vene`) and the CLI's
//! helpers (`vene_cli`: loading models and SAEs from paths or the hub, tables, plots).
#![forbid(unsafe_code)]
#![warn(missing_docs)]
