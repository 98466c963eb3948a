//! GPT-2 (HF `GPT2LMHeadModel`).

mod attention;
mod block;
mod config;
pub(crate) mod mlp;
mod model;

pub use config::Gpt2Config;
pub use model::Gpt2;
