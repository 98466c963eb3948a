//! Checkpoints of [`crate::train`] (pyvene's [`AutoencoderLayer`] trained with L1): the same
//! folder layout as [`crate::training`]'s checkpoints (`checkpoint.safetensors` with the
//! parameters under pyvene's names `param.encoder.0.weight`, ... and Adam's moments;
//! `trainer_state.json` with the step, Adam's step count, the dead-latent counts and the
//! layer's shape), written atomically.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::metrics::DeadLatentTracker;
use crate::training::checkpoint::{
    bad, read_folder, restore_params, write_folder, CheckpointFiles,
};
use crate::training::Adam;
use crate::{Autoencoder, AutoencoderLayer, Result};

const FORMAT: &str = "vene-autoencoder-layer-checkpoint";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: String,
    version: u32,
    /// Steps done (= batches consumed).
    step: usize,
    input_dim: usize,
    latent_dim: usize,
    adam_step: u64,
    steps_since_fired: Vec<u64>,
}

/// The layer's variables under pyvene's names, in [`AutoencoderLayer::vars`]' order.
pub(crate) fn named_vars(ae: &AutoencoderLayer) -> Vec<(String, Var)> {
    [
        crate::ENCODER_WEIGHT,
        crate::ENCODER_BIAS,
        crate::DECODER_WEIGHT,
        crate::DECODER_BIAS,
    ]
    .iter()
    .map(|n| n.to_string())
    .zip(ae.vars())
    .collect()
}

/// What the training loop carries from step to step besides the layer.
pub(crate) struct LayerLoopState {
    pub(crate) step: usize,
    pub(crate) opt: Adam,
    pub(crate) tracker: DeadLatentTracker,
}

/// Writes `ae` and `state` into the folder `dir`, replacing any checkpoint there.
pub(crate) fn write_layer_checkpoint(
    dir: &Path,
    ae: &AutoencoderLayer,
    state: &LayerLoopState,
) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = state.opt.state();
    for (name, var) in named_vars(ae) {
        tensors.insert(format!("param.{name}"), var.as_tensor().detach());
    }
    let file = StateFile {
        format: FORMAT.into(),
        version: VERSION,
        step: state.step,
        input_dim: ae.input_dim(),
        latent_dim: ae.latent_dim(),
        adam_step: state.opt.step_count(),
        steps_since_fired: state.tracker.steps_since_fired().to_vec(),
    };
    write_folder(dir, &tensors, &file)
}

/// Reads the checkpoint folder `dir` into `ae` (which must have the checkpoint's shape and
/// dtype) and returns the loop state, with Adam over `ae`'s variables. Everything is checked
/// before `ae` changes: on an error it is as it was.
pub(crate) fn read_layer_checkpoint(
    dir: &Path,
    ae: &AutoencoderLayer,
    mut opt: Adam,
    dead_window: u64,
) -> Result<LayerLoopState> {
    let CheckpointFiles {
        state: st,
        tensors,
        tensors_path,
    } = read_folder::<StateFile>(dir, FORMAT, VERSION, ae.device())?;
    if (st.input_dim, st.latent_dim) != (ae.input_dim(), ae.latent_dim()) {
        return Err(bad(
            dir,
            format!(
                "it holds a {} -> {} autoencoder, the layer to resume is {} -> {}",
                st.input_dim,
                st.latent_dim,
                ae.input_dim(),
                ae.latent_dim()
            ),
        ));
    }
    if st.steps_since_fired.len() != st.latent_dim {
        return Err(bad(
            dir,
            format!(
                "{} dead-latent counts for {} latents",
                st.steps_since_fired.len(),
                st.latent_dim
            ),
        ));
    }
    let source = tensors_path.display().to_string();
    opt.load_state(st.adam_step, &tensors, &source)
        .map_err(|e| bad(&tensors_path, e))?;
    restore_params(&named_vars(ae), &tensors, &tensors_path)?;
    Ok(LayerLoopState {
        step: st.step,
        opt,
        tracker: DeadLatentTracker::from_counts(st.steps_since_fired, dead_window),
    })
}
