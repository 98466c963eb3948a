//! Autoencoders and sparse autoencoders for vene.
//!
//! - [`Autoencoder`]: the object-safe trait interventions use (`Box<dyn Autoencoder>`).
//! - [`AutoencoderLayer`] (pyvene's, trainable), [`JumpReLUAutoencoder`] (Gemma Scope),
//!   [`TopKAutoencoder`] (sparsify), [`ReluAutoencoder`] (SAELens standard),
//!   [`GatedAutoencoder`] (SAELens `gated`, dictionary_learning `GatedAutoEncoder`).
//! - [`load_sae`]: one entry point for SAELens, Gemma Scope, sparsify, dictionary_learning and
//!   pyvene and Llama Scope files; [`load_sae_from_hub`] for the Hugging Face hub.
//! - [`load_sae_pretrained`]: an SAE by release and id (SAELens's `SAE.from_pretrained`), from
//!   the [`SaeRegistry`] (`data/pretrained_saes.json`, plus `$VENE_SAE_REGISTRY`).
//! - [`train()`]: train an [`AutoencoderLayer`] on a stream of activations; [`metrics`].
//! - [`store`]: an on-disk activation store (safetensors shards + manifest), written by one
//!   or many writers, read back through a bounded shuffle buffer.
//! - [`training`]: train ReLU, TopK, BatchTopK, JumpReLU, Gated and Matryoshka SAEs and
//!   transcoders, and save them in SAELens's or sparsify's layout.
//!
//! # The kinds the loaders read
//!
//! | kind | files | type |
//! |---|---|---|
//! | ReLU (`standard`) | SAELens, dictionary_learning `AutoEncoder`, pyvene | [`ReluAutoencoder`], [`AutoencoderLayer`] |
//! | JumpReLU | Gemma Scope, SAELens `jumprelu`, dictionary_learning `JumpReluAutoEncoder` | [`JumpReLUAutoencoder`] |
//! | TopK (per row) | sparsify, SAELens `topk`, dictionary_learning `AutoEncoderTopK` | [`TopKAutoencoder`] |
//! | gated | SAELens `gated`, dictionary_learning `GatedAutoEncoder` | [`GatedAutoencoder`] |
//! | BatchTopK, Matryoshka BatchTopK | dictionary_learning `BatchTopKSAE` / `MatryoshkaBatchTopKSAE`, SAELens `batchtopk` / `matryoshka_batchtopk` (which SAELens saves as `jumprelu`) | [`JumpReLUAutoencoder`]: the learned threshold at inference, as those libraries encode, not a top-k over the batch |
//! | transcoders | SAELens `transcoder`, `skip_transcoder`, `jumprelu_transcoder`; sparsify `transcode: true` | ReLU / JumpReLU / TopK with [`Autoencoder::output_dim`] and [`LoadedSae::output_hook_name`] |
//!
//! Any of the linear kinds may carry SAELens's run-time input normalisation
//! ([`InputNormalization`]: `layer_norm`, `constant_norm_rescale`; `expected_average_only_in`
//! is folded into the weights) and a skip connection (sparsify `skip_connection`, SAELens
//! `skip_transcoder`: `+ x @ W_skip^T`). Both make the reconstruction depend on the input,
//! not only on the latent: [`Autoencoder::decode_for`] decodes a latent as the
//! reconstruction of a given input (its statistics, its skip term), and the interventions of
//! vene-interventions decode an edited latent with the base's. Every kind saves and loads back
//! bit for bit ([`Autoencoder::state`], [`autoencoder_from_state`]).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod atomic;
mod autoencoder;
mod core;
mod error;
mod gated;
mod hub;
mod io;
mod jumprelu;
mod layer;
pub mod limits;
mod loaders;
pub mod metrics;
mod normalization;
mod npz;
mod registry;
mod relu;
mod schedule;
mod seeded;
mod state;
pub mod store;
mod topk;
mod torch_save;
mod train;
mod train_checkpoint;
pub mod training;
mod util;

pub use autoencoder::{Autoencoder, AutoencoderState};
pub use error::{AutoencoderError, Result};
pub use gated::GatedAutoencoder;
pub use hub::{cached_path, load_sae_from_hub, HubOptions};
pub use io::{read_safetensors, read_torch_pickle, safetensors_bytes, write_safetensors};
pub use jumprelu::JumpReLUAutoencoder;
pub use layer::{AutoencoderLayer, DECODER_BIAS, DECODER_WEIGHT, ENCODER_BIAS, ENCODER_WEIGHT};
pub use loaders::{
    detect_format, load_sae, load_sae_as, load_sae_with, load_sparsify_dir, LoadOptions, LoadedSae,
    SaeFormat,
};
pub use normalization::{InputNormalization, LAYER_NORM_EPS};
pub use registry::{
    load_sae_pretrained, load_sae_pretrained_with, pretrained_release, pretrained_releases,
    PretrainedSae, SaeRegistry, SaeRelease, SAE_REGISTRY_ENV,
};
pub use relu::ReluAutoencoder;
pub use state::autoencoder_from_state;
pub use topk::TopKAutoencoder;
pub use torch_save::{torch_pickle_bytes, write_torch_pickle};
pub use train::{resume_train, train, TrainConfig, TrainProgress};
pub use vene_hub::HubEnv;
