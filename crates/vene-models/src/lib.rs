//! The decoder-only language models of vene, written on candle, calling a hook at every
//! component of every layer (pyvene's component names and tap points), so an intervention can
//! read or replace any activation.
//!
//! - One generic decoder ([`Model`]) built from a [`DecoderSpec`]: GPT-2, Llama, Mistral,
//!   Gemma, Gemma 2, Qwen2, Qwen3, GPT-NeoX, GPT-Neo, OLMo and OLMo 2, each a way of filling the
//!   spec from the HF `config.json` ([`supported_model_types`]).
//! - [`LanguageModel`]: `forward` (logits for every position, optional padding mask and
//!   position ids), `forward_logits_at` (logits only at chosen positions, or a run that stops
//!   after the last layer its hooks need: [`LogitsAt`]), `forward_cached` with an explicit
//!   [`KvCache`].
//! - Loading from a local folder ([`Model::from_dir`], [`load_pretrained`]; safetensors or
//!   PyTorch `pytorch_model.bin`, single or sharded), from the hub ([`Model::from_hub`]; cache,
//!   offline mode and endpoint from the environment: [`HubEnv`]), or fresh random weights in a
//!   `VarMap`
//!   ([`Model::random_from_config`], [`Model::random_gpt2`], [`Model::random_llama`]).
//! - [`generate`] (greedy or seeded sampling, hooks active at every step), [`generate_batch`]
//!   (prompts of different lengths, left padding, each example stopping on its own),
//!   [`Tokenizer`].
#![warn(missing_docs)]

mod cache;
pub mod decoder;
mod error;
mod families;
mod generate;
mod generate_batch;
mod hub;
mod inputs;
mod language_model;
mod loader;
mod logits_at;
mod model;
mod prefix;
mod pth;
mod seeded;
mod token_text;
mod tokenizer;
mod weights;

pub use cache::KvCache;
pub use decoder::spec::{self, DecoderSpec};
pub use error::{ModelError, Result};
pub use families::gpt2::Gpt2Config;
pub use families::llama::{llama_config, LlamaConfig};
pub use families::{module_path, module_path_component, site_for_model, supported_model_types};
pub use generate::{generate, GenerationConfig};
pub use generate_batch::{generate_batch, left_pad, BatchGeneration};
pub use language_model::LanguageModel;
pub use loader::{load_pretrained, Pretrained};
pub use logits_at::LogitsAt;
pub use model::Model;
pub use prefix::Prefix;
pub use tokenizer::Tokenizer;
pub use vene_hub::HubEnv;
