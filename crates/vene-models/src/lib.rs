//! GPT-2 and Llama for vene, written on candle-nn, calling a hook at every component of every
//! layer (pyvene's component names and tap points), so an intervention can read or replace any
//! activation.
//!
//! - [`LanguageModel`]: `forward` (logits for every position, optional padding mask),
//!   `forward_cached` with an explicit [`KvCache`].
//! - [`Gpt2`] and [`Llama`], and [`Model`] that holds either; loading from a local folder
//!   ([`Model::from_dir`], [`load_pretrained`]), from the hub ([`Model::from_hub`]), or fresh
//!   random weights in a `VarMap` ([`Model::random_gpt2`], [`Model::random_llama`]).
//! - [`generate`] (greedy or seeded sampling, hooks active at every step), [`Tokenizer`].

mod cache;
mod decoder;
mod error;
mod generate;
mod gpt2;
mod hub;
mod inputs;
mod language_model;
mod llama;
mod loader;
mod model;
mod ops;
mod tokenizer;
mod weights;

pub use cache::KvCache;
pub use error::{ModelError, Result};
pub use generate::{generate, GenerationConfig};
pub use gpt2::{Gpt2, Gpt2Config};
pub use language_model::LanguageModel;
pub use llama::{llama_config, Llama, LlamaConfig};
pub use loader::{load_pretrained, Pretrained};
pub use model::Model;
pub use tokenizer::Tokenizer;
