//! Loaders for SAEs trained elsewhere, and [`load_sae`], which detects the format.
//!
//! Every loader reads the source's real on-disk layout, checks the shapes against each other
//! and the config, and decides each matrix's orientation from `d_in` / `d_sae` (taken from the
//! bias vectors and the config), never from its name. A square matrix (`d_in == d_sae`) cannot
//! be told apart: it is read in the format's documented layout.

mod dictionary_learning;
mod gemmascope;
mod llamascope;
mod pyvene;
mod saelens;
mod sparsify;

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use crate::util::Orient;
use crate::{Autoencoder, AutoencoderError, Result};

pub use sparsify::load_sparsify_dir;

/// The on-disk formats [`load_sae`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaeFormat {
    /// SAELens: `cfg.json` + `sae_weights.safetensors`.
    SaeLens,
    /// Gemma Scope: `params.npz`.
    GemmaScope,
    /// EleutherAI sparsify: `cfg.json` + `sae.safetensors` in a folder per hookpoint.
    Sparsify,
    /// dictionary_learning: `ae.pt` (torch pickle), optional `config.json`.
    DictionaryLearning,
    /// pyvene: an `AutoencoderIntervention` state dict in `intkey_*.bin` (torch pickle) or a
    /// safetensors file.
    Pyvene,
    /// Llama Scope (OpenMOSS lm-saes): `hyperparams.json` + `checkpoints/final.safetensors`.
    LlamaScope,
}

/// Options for [`load_sae_with`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Where the weights go.
    pub device: Device,
    /// For SAELens `normalize_activations = "expected_average_only_in"`: the norm scaling
    /// factor to fold into the weights. When `None`, the loader looks for
    /// `activation_scaler.json` (`{"scaling_factor": s}`) beside the weights, then for a
    /// `norm_scaling_factor` key in `cfg.json`; with none found the weights are used as they
    /// are, as SAELens does.
    pub norm_scaling_factor: Option<f64>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            device: Device::Cpu,
            norm_scaling_factor: None,
        }
    }
}

/// An autoencoder loaded from disk and what its files say about it.
#[derive(Debug)]
pub struct LoadedSae {
    /// The autoencoder.
    pub autoencoder: Box<dyn Autoencoder>,
    /// The format it was read from.
    pub format: SaeFormat,
    /// The architecture, as the files name it: SAELens's (`standard`, `jumprelu`, `topk`,
    /// `gated`, `batchtopk`, `matryoshka_batchtopk`, `transcoder`, `skip_transcoder`,
    /// `jumprelu_transcoder`), dictionary_learning's (`standard`, `topk`, `gated`,
    /// `jumprelu`, `batchtopk`, `matryoshka_batchtopk`), sparsify's (`topk`, `topk_skip`,
    /// `topk_transcoder`, `topk_skip_transcoder`), Gemma Scope's `jumprelu`.
    pub architecture: String,
    /// Width of the activations it reads.
    pub d_in: usize,
    /// Width of its latent space.
    pub d_sae: usize,
    /// Width of what it reconstructs or predicts: `d_in` except for a transcoder.
    pub d_out: usize,
    /// The hook point it was trained on, when the files say (SAELens `hook_name`, the
    /// sparsify folder name, dictionary_learning `submodule_name`). A transcoder reads it.
    pub hook_name: Option<String>,
    /// For a transcoder, the hook point whose activations it predicts, when the files say:
    /// SAELens `hook_name_out`; for a sparsify transcoder (`transcode: true`) the hookpoint
    /// name again: sparsify's transcoders read a module's input (`hook_name`) and predict
    /// the same module's output. `None` for an autoencoder (it reconstructs `hook_name`).
    pub output_hook_name: Option<String>,
    /// The layer, when the files say (config, or `blocks.N.` / `layers.N` / `layer_N` in a
    /// hook name or path).
    pub layer: Option<usize>,
    /// The SAELens norm scaling factor folded into the weights, if any.
    pub norm_scaling_factor: Option<f64>,
    /// pyvene's saved `interchange_dim` (the selected latents), when present.
    pub interchange_dim: Option<Vec<usize>>,
    /// Whether the SAE was trained on token sequences that start with the tokenizer's BOS
    /// token (SAELens `cfg.json` `prepend_bos`, top level or under `metadata`); `None` when the
    /// files do not say.
    pub prepend_bos: Option<bool>,
    /// The file the weights came from.
    pub weights_path: PathBuf,
}

/// Loads the SAE at `path` (a folder or a weights file) onto the CPU, detecting its format
/// from the files (see [`detect_format`]).
///
/// ```no_run
/// use vene_autoencoder::load_sae;
///
/// let sae = load_sae("saes/gpt2-res-jb/blocks.8.hook_resid_pre")?;
/// println!("{:?} {} -> {}", sae.format, sae.d_in, sae.d_sae);
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
pub fn load_sae(path: impl AsRef<Path>) -> Result<LoadedSae> {
    load_sae_with(path, &LoadOptions::default())
}

/// [`load_sae`] with options (device, SAELens norm scaling factor).
pub fn load_sae_with(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<LoadedSae> {
    let path = path.as_ref();
    let format = detect_format(path)?;
    load_sae_as(path, format, opts)
}

/// Loads `path` as the given format, without detection.
pub fn load_sae_as(
    path: impl AsRef<Path>,
    format: SaeFormat,
    opts: &LoadOptions,
) -> Result<LoadedSae> {
    let path = path.as_ref();
    match format {
        SaeFormat::SaeLens => saelens::load(path, opts),
        SaeFormat::GemmaScope => gemmascope::load(path, opts),
        SaeFormat::Sparsify => sparsify::load(path, opts),
        SaeFormat::DictionaryLearning => dictionary_learning::load(path, opts),
        SaeFormat::Pyvene => pyvene::load(path, opts),
        SaeFormat::LlamaScope => llamascope::load(path, opts),
    }
}

/// Which format the folder or file at `path` holds:
///
/// | files | format |
/// |---|---|
/// | `cfg.json` + `sae_weights.safetensors` | SAELens |
/// | `cfg.json` + `sae.safetensors` | sparsify |
/// | `params.npz` (or any `.npz` file) | Gemma Scope |
/// | `ae.pt` | dictionary_learning |
/// | `hyperparams.json` + `checkpoints/final.safetensors` | Llama Scope |
/// | `intkey_*.bin`, or another `.safetensors` file | pyvene |
pub fn detect_format(path: &Path) -> Result<SaeFormat> {
    if llamascope::is_llama_scope(path) {
        return Ok(SaeFormat::LlamaScope);
    }
    if path.is_file() {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dir = path.parent().unwrap_or(Path::new("."));
        return match name.as_str() {
            "sae_weights.safetensors" => Ok(SaeFormat::SaeLens),
            "sae.safetensors" if dir.join("cfg.json").is_file() => Ok(SaeFormat::Sparsify),
            "ae.pt" => Ok(SaeFormat::DictionaryLearning),
            n if n.ends_with(".npz") => Ok(SaeFormat::GemmaScope),
            n if n.starts_with("intkey_") && n.ends_with(".bin") => Ok(SaeFormat::Pyvene),
            n if n.ends_with(".safetensors") => Ok(SaeFormat::Pyvene),
            n if n.ends_with(".pt") || n.ends_with(".pth") => Ok(SaeFormat::DictionaryLearning),
            _ => Err(AutoencoderError::UnknownFormat {
                path: path.to_path_buf(),
                message: "file name matches no known SAE format".into(),
            }),
        };
    }
    if !path.is_dir() {
        return Err(AutoencoderError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder"),
        ));
    }
    let has = |n: &str| path.join(n).is_file();
    if has("cfg.json") && has("sae_weights.safetensors") {
        return Ok(SaeFormat::SaeLens);
    }
    if has("cfg.json") && has("sae.safetensors") {
        return Ok(SaeFormat::Sparsify);
    }
    if has("params.npz") {
        return Ok(SaeFormat::GemmaScope);
    }
    if has("ae.pt") {
        return Ok(SaeFormat::DictionaryLearning);
    }
    let names = list_files(path)?;
    if names
        .iter()
        .any(|n| n.starts_with("intkey_") && n.ends_with(".bin"))
    {
        return Ok(SaeFormat::Pyvene);
    }
    Err(AutoencoderError::UnknownFormat {
        path: path.to_path_buf(),
        message: format!("no known SAE files here (found {names:?})"),
    })
}

/// File names in `dir`, sorted.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| AutoencoderError::io(dir, e))? {
        let entry = entry.map_err(|e| AutoencoderError::io(dir, e))?;
        if entry.path().is_file() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// The folder holding `path`'s files and the weights file: `(dir, dir/weights)` for a folder,
/// `(parent, path)` for a file.
pub(crate) fn dir_and_file(path: &Path, weights: &str) -> (PathBuf, PathBuf) {
    if path.is_dir() {
        (path.to_path_buf(), path.join(weights))
    } else {
        (
            path.parent().unwrap_or(Path::new(".")).to_path_buf(),
            path.to_path_buf(),
        )
    }
}

/// Reads a JSON file.
pub(crate) fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(|e| AutoencoderError::io(path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| AutoencoderError::invalid_file(path, format!("invalid JSON: {e}")))
}

/// A config key as a non-negative integer, if present.
pub(crate) fn cfg_usize(cfg: &serde_json::Value, key: &str, file: &Path) -> Result<Option<usize>> {
    match cfg.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| AutoencoderError::InvalidConfig {
                file: file.display().to_string(),
                key: key.to_string(),
                message: format!("expected a non-negative integer, got {v}"),
            }),
    }
}

/// A config key as a string, if present.
pub(crate) fn cfg_str<'a>(cfg: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    cfg.get(key).and_then(|v| v.as_str())
}

/// Takes a tensor out of a state dict, or a [`AutoencoderError::MissingTensor`].
pub(crate) fn take(
    map: &mut std::collections::HashMap<String, Tensor>,
    name: &str,
    file: &Path,
) -> Result<Tensor> {
    map.remove(name)
        .ok_or_else(|| AutoencoderError::MissingTensor {
            file: file.display().to_string(),
            tensor: name.to_string(),
        })
}

/// The length of a vector tensor, or a shape error naming it.
pub(crate) fn vector_len(file: &str, name: &str, t: &Tensor) -> Result<usize> {
    match t.dims() {
        [n] => Ok(*n),
        other => Err(AutoencoderError::ShapeMismatch {
            file: file.to_string(),
            tensor: name.to_string(),
            expected: "a vector".into(),
            got: other.to_vec(),
        }),
    }
}

/// Checks that a vector has length `want` (from the config or another tensor).
pub(crate) fn expect_len(file: &str, name: &str, t: &Tensor, want: usize) -> Result<()> {
    if t.dims() == [want] {
        Ok(())
    } else {
        Err(AutoencoderError::ShapeMismatch {
            file: file.to_string(),
            tensor: name.to_string(),
            expected: format!("[{want}]"),
            got: t.dims().to_vec(),
        })
    }
}

/// The orientation of a matrix that maps width `input` to width `output`: `InOut` for
/// `[input, output]`, `OutIn` for `[output, input]`; a square one gets `documented`.
pub(crate) fn orient_of(
    file: &str,
    name: &str,
    t: &Tensor,
    input: usize,
    output: usize,
    documented: Orient,
) -> Result<Orient> {
    let dims = t.dims();
    if input == output && dims == [input, output] {
        return Ok(documented);
    }
    if dims == [input, output] {
        Ok(Orient::InOut)
    } else if dims == [output, input] {
        Ok(Orient::OutIn)
    } else {
        Err(AutoencoderError::ShapeMismatch {
            file: file.to_string(),
            tensor: name.to_string(),
            expected: format!("[{input}, {output}] or [{output}, {input}]"),
            got: dims.to_vec(),
        })
    }
}

/// `t` in the layout `want` (`[rows, cols]`), transposed (and copied) if it is stored the
/// other way round; a square `t` is taken as stored.
pub(crate) fn in_layout(file: &str, name: &str, t: Tensor, want: [usize; 2]) -> Result<Tensor> {
    let dims = t.dims().to_vec();
    if dims == want {
        Ok(t)
    } else if dims == [want[1], want[0]] {
        Ok(t.t()?.contiguous()?)
    } else {
        Err(AutoencoderError::ShapeMismatch {
            file: file.to_string(),
            tensor: name.to_string(),
            expected: format!("[{}, {}] or [{}, {}]", want[0], want[1], want[1], want[0]),
            got: dims,
        })
    }
}

/// The layer number in a hook name or path: `blocks.8.hook_resid_pre`, `layers.3`,
/// `model.layers.3.mlp`, `layer_20/width_16k`.
pub(crate) fn layer_from_name(name: &str) -> Option<usize> {
    let parts: Vec<&str> = name.split(['.', '/', '\\']).collect();
    for (i, p) in parts.iter().enumerate() {
        if matches!(*p, "blocks" | "layers" | "h" | "layer") {
            if let Some(n) = parts.get(i + 1).and_then(|n| n.parse().ok()) {
                return Some(n);
            }
        }
        if let Some(rest) = p.strip_prefix("layer_") {
            if let Ok(n) = rest.parse() {
                return Some(n);
            }
        }
    }
    None
}

/// A scalar threshold tensor `t` (named `name` in `file`; any shape with one element) as a
/// JumpReLU threshold `[d_sae]` in `dtype` (dictionary_learning BatchTopK, SAELens
/// `topk_threshold`).
pub(crate) fn scalar_threshold(
    file: &str,
    name: &str,
    t: &Tensor,
    d_sae: usize,
    dtype: candle_core::DType,
) -> Result<Tensor> {
    if t.elem_count() != 1 {
        return Err(AutoencoderError::ShapeMismatch {
            file: file.to_string(),
            tensor: name.to_string(),
            expected: "a scalar".into(),
            got: t.dims().to_vec(),
        });
    }
    let v = t
        .flatten_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_vec1::<f64>()?[0];
    if !v.is_finite() {
        return Err(AutoencoderError::NonFinite {
            file: file.to_string(),
            tensor: name.to_string(),
        });
    }
    Ok(Tensor::full(v, d_sae, t.device())?.to_dtype(dtype)?)
}

/// An error from a builder (`with_skip`), renamed to the file the tensor came from.
pub(crate) fn rename_source(e: AutoencoderError, file: &str) -> AutoencoderError {
    match e {
        AutoencoderError::ShapeMismatch {
            tensor,
            expected,
            got,
            ..
        } => AutoencoderError::ShapeMismatch {
            file: file.to_string(),
            tensor,
            expected,
            got,
        },
        AutoencoderError::NonFinite { tensor, .. } => AutoencoderError::NonFinite {
            file: file.to_string(),
            tensor,
        },
        other => other,
    }
}
