//! Autoencoders and sparse autoencoders for vene.
//!
//! - [`Autoencoder`]: the object-safe trait interventions use (`Box<dyn Autoencoder>`).
//! - [`AutoencoderLayer`] (pyvene's, trainable), [`JumpReLUAutoencoder`] (Gemma Scope),
//!   [`TopKAutoencoder`] (sparsify), [`ReluAutoencoder`] (SAELens standard).
//! - [`load_sae`]: one entry point for SAELens, Gemma Scope, sparsify, dictionary_learning and
//!   pyvene files; [`load_sae_from_hub`] for the Hugging Face hub.
//! - [`train()`]: train an [`AutoencoderLayer`] on a stream of activations; [`metrics`].

pub mod atomic;
mod autoencoder;
mod core;
mod error;
mod gated;
mod hub;
mod hub_env;
mod io;
mod jumprelu;
mod layer;
pub mod limits;
mod loaders;
pub mod metrics;
mod normalization;
mod npz;
mod relu;
mod state;
mod topk;
mod train;
mod util;

pub use autoencoder::{Autoencoder, AutoencoderState};
pub use error::{AutoencoderError, Result};
pub use gated::GatedAutoencoder;
pub use hub::{cached_path, load_sae_from_hub, HubOptions};
pub use hub_env::HubEnv;
pub use io::{read_safetensors, read_torch_pickle, safetensors_bytes, write_safetensors};
pub use jumprelu::JumpReLUAutoencoder;
pub use layer::{AutoencoderLayer, DECODER_BIAS, DECODER_WEIGHT, ENCODER_BIAS, ENCODER_WEIGHT};
pub use loaders::{
    detect_format, load_sae, load_sae_as, load_sae_with, load_sparsify_dir, LoadOptions, LoadedSae,
    SaeFormat,
};
pub use normalization::{InputNormalization, LAYER_NORM_EPS};
pub use relu::ReluAutoencoder;
pub use state::autoencoder_from_state;
pub use topk::TopKAutoencoder;
pub use train::{train, TrainConfig, TrainProgress};
