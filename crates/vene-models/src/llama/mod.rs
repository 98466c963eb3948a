//! Llama (HF `LlamaForCausalLM`).

mod attention;
mod block;
mod config;
mod mlp;
mod model;

pub use config::{llama_config, LlamaConfig};
pub use model::Llama;
