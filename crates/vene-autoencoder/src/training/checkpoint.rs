//! Training checkpoints: a folder holding `checkpoint.safetensors` (the SAE's parameters
//! `param.{name}`, Adam's moments `adam.m.{name}` / `adam.v.{name}`, and the trainer's float
//! state as f64 scalars `trainer.*`) and `trainer_state.json` (step, data position, Adam's
//! step count, the dead-latent counts, the RNG state, the SAE's shape). Written atomically:
//! the folder is replaced whole or not at all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use super::adam::Adam;
use super::config::{Architecture, SaeTrainConfig};
use super::init::SeededRng;
use super::sae::TrainingSae;
use crate::atomic::StagedDir;
use crate::metrics::DeadLatentTracker;
use crate::{AutoencoderError, Result};

/// The tensors' file in a checkpoint folder.
pub const CHECKPOINT_TENSORS: &str = "checkpoint.safetensors";
/// The trainer state's file in a checkpoint folder.
pub const CHECKPOINT_STATE: &str = "trainer_state.json";
const FORMAT: &str = "vene-sae-checkpoint";
const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: String,
    version: u32,
    /// Steps done.
    step: usize,
    /// Batches consumed from the source (one per step).
    batches_consumed: usize,
    architecture: Architecture,
    input_dim: usize,
    output_dim: usize,
    latent_dim: usize,
    transcoder: bool,
    adam_step: u64,
    steps_since_fired: Vec<u64>,
    rng_state: u64,
    resampled: usize,
    b_dec_initialized: bool,
}

/// What the loop carries from step to step besides the SAE.
pub(crate) struct LoopState {
    pub(crate) step: usize,
    pub(crate) opt: Adam,
    pub(crate) tracker: DeadLatentTracker,
    pub(crate) rng: SeededRng,
    pub(crate) resampled: usize,
}

pub(crate) fn bad(path: &Path, message: impl std::fmt::Display) -> AutoencoderError {
    AutoencoderError::InvalidCheckpoint {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn scalar(v: f64) -> Result<Tensor> {
    Ok(Tensor::new(&[v], &Device::Cpu)?)
}

/// Writes `sae` and `state` into the folder `dir`, replacing any checkpoint there.
pub(crate) fn write_checkpoint(dir: &Path, sae: &TrainingSae, state: &LoopState) -> Result<()> {
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    for (name, var) in sae.named_vars() {
        tensors.insert(format!("param.{name}"), var.as_tensor().detach());
    }
    tensors.extend(state.opt.state());
    tensors.insert(
        "trainer.batch_threshold".into(),
        scalar(sae.batch_threshold)?,
    );
    tensors.insert("trainer.input_scale".into(), scalar(sae.input_scale)?);
    tensors.insert("trainer.output_scale".into(), scalar(sae.output_scale)?);
    let file = StateFile {
        format: FORMAT.into(),
        version: VERSION,
        step: state.step,
        batches_consumed: state.step,
        architecture: sae.architecture().clone(),
        input_dim: sae.input_dim(),
        output_dim: sae.output_dim(),
        latent_dim: sae.latent_dim(),
        transcoder: sae.is_transcoder(),
        adam_step: state.opt.step_count(),
        steps_since_fired: state.tracker.steps_since_fired().to_vec(),
        rng_state: state.rng.state(),
        resampled: state.resampled,
        b_dec_initialized: state.step > 0,
    };
    write_folder(dir, &tensors, &file)
}

/// Writes a checkpoint folder `dir` (replacing any there, atomically): `tensors` into
/// [`CHECKPOINT_TENSORS`] and `state` as JSON into [`CHECKPOINT_STATE`].
pub(crate) fn write_folder<S: Serialize>(
    dir: &Path,
    tensors: &HashMap<String, Tensor>,
    state: &S,
) -> Result<()> {
    let staged = StagedDir::new(dir).map_err(|e| AutoencoderError::io(dir, e))?;
    let tpath = staged.path().join(CHECKPOINT_TENSORS);
    candle_core::safetensors::save(tensors, &tpath)?;
    let json = serde_json::to_vec_pretty(state)
        .map_err(|e| AutoencoderError::InvalidArgument(format!("checkpoint state: {e}")))?;
    let spath = staged.path().join(CHECKPOINT_STATE);
    std::fs::write(&spath, json).map_err(|e| AutoencoderError::io(&spath, e))?;
    staged
        .commit(true)
        .map_err(|e| AutoencoderError::io(dir, e))?;
    Ok(())
}

/// A checkpoint folder's two files, read and checked: the state (JSON of type `S`, whose
/// `format` and `version` must be `format` and `version`) and the tensors, on `device`.
pub(crate) struct CheckpointFiles<S> {
    /// The parsed state file.
    pub(crate) state: S,
    /// Every tensor of the tensors' file.
    pub(crate) tensors: HashMap<String, Tensor>,
    /// The tensors' file, for the errors.
    pub(crate) tensors_path: PathBuf,
}

/// What every checkpoint state file starts with.
#[derive(Deserialize)]
struct Header {
    format: String,
    version: u32,
}

/// Reads the checkpoint folder `dir` (see [`CheckpointFiles`]).
pub(crate) fn read_folder<S: serde::de::DeserializeOwned>(
    dir: &Path,
    format: &str,
    version: u32,
    device: &Device,
) -> Result<CheckpointFiles<S>> {
    if !dir.is_dir() {
        return Err(bad(dir, "no such checkpoint folder"));
    }
    let spath = dir.join(CHECKPOINT_STATE);
    let tpath = dir.join(CHECKPOINT_TENSORS);
    for p in [&spath, &tpath] {
        if !p.is_file() {
            return Err(bad(
                dir,
                format!(
                    "missing {} (not a checkpoint folder?)",
                    p.file_name().unwrap_or_default().to_string_lossy()
                ),
            ));
        }
    }
    let text = std::fs::read(&spath).map_err(|e| AutoencoderError::io(&spath, e))?;
    let header: Header =
        serde_json::from_slice(&text).map_err(|e| bad(&spath, format!("corrupt JSON: {e}")))?;
    if header.format != format || header.version != version {
        return Err(bad(
            &spath,
            format!(
                "format `{}` version {} (expected `{format}` version {version})",
                header.format, header.version
            ),
        ));
    }
    let state: S =
        serde_json::from_slice(&text).map_err(|e| bad(&spath, format!("corrupt JSON: {e}")))?;
    let tensors = candle_core::safetensors::load(&tpath, device)
        .map_err(|e| bad(&tpath, format!("unreadable safetensors: {e}")))?;
    Ok(CheckpointFiles {
        state,
        tensors,
        tensors_path: tpath,
    })
}

/// Sets each of `vars` from the tensor `param.{name}` of `files`, after checking that every
/// one is there with the variable's shape and dtype (nothing is set unless all are).
pub(crate) fn restore_params(
    vars: &[(String, candle_core::Var)],
    tensors: &HashMap<String, Tensor>,
    tpath: &Path,
) -> Result<()> {
    let mut found = Vec::with_capacity(vars.len());
    for (name, var) in vars {
        let key = format!("param.{name}");
        let t = tensors
            .get(&key)
            .ok_or_else(|| bad(tpath, format!("missing tensor `{key}`")))?;
        if t.dims() != var.dims() || t.dtype() != var.dtype() {
            return Err(bad(
                tpath,
                format!(
                    "tensor `{key}` is {:?} {:?}, expected {:?} {:?}",
                    t.dtype(),
                    t.dims(),
                    var.dtype(),
                    var.dims()
                ),
            ));
        }
        found.push((var, t));
    }
    for (var, t) in found {
        var.set(t)?;
    }
    Ok(())
}

/// Reads the checkpoint folder `dir` for `cfg` (whose architecture must be the checkpoint's)
/// onto `device`: the SAE and the loop state.
pub(crate) fn read_checkpoint(
    dir: &Path,
    cfg: &SaeTrainConfig,
    device: &Device,
) -> Result<(TrainingSae, LoopState)> {
    let CheckpointFiles {
        state: st,
        tensors,
        tensors_path: tpath,
    } = read_folder::<StateFile>(dir, FORMAT, VERSION, device)?;
    let spath = dir.join(CHECKPOINT_STATE);
    if st.architecture != cfg.architecture {
        return Err(bad(
            dir,
            format!(
                "it trains {:?} but the config trains {:?}",
                st.architecture, cfg.architecture
            ),
        ));
    }
    if st.steps_since_fired.len() != st.latent_dim {
        return Err(bad(
            &spath,
            format!(
                "{} dead-latent counts for {} latents",
                st.steps_since_fired.len(),
                st.latent_dim
            ),
        ));
    }
    let w_enc = tensors
        .get("param.W_enc")
        .ok_or_else(|| bad(&tpath, "missing tensor `param.W_enc`"))?;
    let dtype = w_enc.dtype();
    let mut sae = if st.transcoder {
        TrainingSae::new_transcoder(
            cfg,
            st.input_dim,
            st.output_dim,
            st.latent_dim,
            dtype,
            device,
        )
    } else {
        TrainingSae::new(cfg, st.input_dim, st.latent_dim, dtype, device)
    }
    .map_err(|e| bad(dir, format!("cannot rebuild its SAE: {e}")))?;
    restore_params(&sae.named_vars(), &tensors, &tpath)?;
    let get_f64 = |key: &str| -> Result<f64> {
        let t = tensors
            .get(key)
            .ok_or_else(|| bad(&tpath, format!("missing tensor `{key}`")))?;
        if t.dtype() != DType::F64 || t.elem_count() != 1 {
            return Err(bad(&tpath, format!("`{key}` is not one f64")));
        }
        Ok(t.flatten_all()?.to_vec1::<f64>()?[0])
    };
    sae.batch_threshold = get_f64("trainer.batch_threshold")?;
    sae.input_scale = get_f64("trainer.input_scale")?;
    sae.output_scale = get_f64("trainer.output_scale")?;
    let mut opt = super::trainer::new_optimizer(&sae, cfg, cfg.lr_at(st.step))?;
    opt.load_state(st.adam_step, &tensors, &tpath.display().to_string())
        .map_err(|e| bad(&tpath, e))?;
    let state = LoopState {
        step: st.step,
        opt,
        tracker: DeadLatentTracker::from_counts(st.steps_since_fired, cfg.dead_window),
        rng: SeededRng::from_state(st.rng_state),
        resampled: st.resampled,
    };
    Ok((sae, state))
}

/// Keeps the records of the JSON-lines file `path` up to `step` (a resumed run rewrites
/// what followed its checkpoint); a missing file stays missing.
pub(crate) fn truncate_metrics(path: &Path, step: usize) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(AutoencoderError::io(path, e)),
    };
    let mut kept = String::new();
    for line in text.lines() {
        let v: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) => continue, // a record cut by the interruption
        };
        if v.get("step")
            .and_then(|s| s.as_u64())
            .is_some_and(|s| s as usize <= step)
        {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    crate::atomic::write_file(path, kept.as_bytes()).map_err(|e| AutoencoderError::io(path, e))
}

/// The path of the checkpoint folder in `cfg`, for the errors.
pub(crate) fn checkpoint_dir(cfg: &SaeTrainConfig) -> Option<PathBuf> {
    cfg.checkpoint_every.and(cfg.checkpoint_dir.clone())
}
