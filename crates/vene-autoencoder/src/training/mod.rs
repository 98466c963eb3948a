//! Training sparse autoencoders and transcoders of every common architecture.
//!
//! - [`Architecture`]: ReLU (L1, optionally weighted by decoder norms), TopK and BatchTopK
//!   (AuxK loss on dead latents), JumpReLU (straight-through estimators, L0 penalty),
//!   Gated, Matryoshka BatchTopK.
//! - [`SaeTrainConfig`]: learning-rate warm-up and decay, sparsity-coefficient warm-up,
//!   decoder-bias init (mean or geometric median), input normalisation (folded into the
//!   weights at the end), unit-norm decoder rows, dead-latent window, resampling (ReLU).
//! - [`TrainingSae`]: the parameters; [`train_sae`] on activations, [`train_transcoder`] on
//!   (input, target) pairs; [`SaeTrainer`] one step at a time (the step `train_sae` runs);
//!   [`TrainingSae::to_trained`] converts to the inference types and
//!   [`TrainingSae::save_saelens`] / [`TrainingSae::save_sparsify`] write the files the
//!   loaders read.
//! - Checkpoints ([`SaeTrainConfig::checkpoint_every`]) and [`resume_sae_training`] /
//!   [`resume_transcoder_training`]: a stopped run resumes bit-exactly, thanks to the
//!   crate's own [`Adam`], whose state can be saved; progress records as JSON lines
//!   ([`SaeTrainConfig::metrics_path`]).

mod adam;
pub(crate) mod checkpoint;
mod config;
mod init;
mod losses;
mod masks;
mod resample;
mod sae;
mod save;
mod step;
mod trainer;

pub use adam::{Adam, AdamParams};
pub use checkpoint::{CHECKPOINT_STATE, CHECKPOINT_TENSORS};
pub use config::{Architecture, BDecInit, SaeTrainConfig};
pub use init::{geometric_median, norm_scaling_factor};
pub use sae::{TrainedSae, TrainingSae};
pub use save::SaveMetadata;
pub use step::SaeTrainer;
pub use trainer::{
    resume_sae_training, resume_transcoder_training, train_sae, train_transcoder, SaeTrainProgress,
};
