//! Reading and writing tensors: safetensors (with typed errors) and `AutoencoderLayer`
//! save/load under pyvene's names.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};

use crate::core::Part;
use crate::layer::{DECODER_BIAS, DECODER_WEIGHT, ENCODER_BIAS, ENCODER_WEIGHT};
use crate::{AutoencoderError, AutoencoderLayer, Result};

/// Reads every tensor of a safetensors file onto `device`. A missing file is
/// [`AutoencoderError::Io`]; a truncated or corrupt one is [`AutoencoderError::InvalidFile`].
pub fn read_safetensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let bytes = std::fs::read(path).map_err(|e| AutoencoderError::io(path, e))?;
    // Validate the header and the data extent first so that corruption gets a clear error.
    safetensors::SafeTensors::deserialize(&bytes).map_err(|e| {
        AutoencoderError::invalid_file(path, format!("not a valid safetensors file: {e}"))
    })?;
    candle_core::safetensors::load_buffer(&bytes, device)
        .map_err(|e| AutoencoderError::invalid_file(path, e))
}

/// Reads the state dict of a torch zip pickle (`torch.save`: `ae.pt`, pyvene's `intkey_*.bin`)
/// onto `device`. A missing file is [`AutoencoderError::Io`]; a file that is not a readable
/// torch pickle is [`AutoencoderError::InvalidFile`], also when the pickle reader panics on it.
pub fn read_torch_pickle(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    if !path.is_file() {
        return Err(AutoencoderError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        ));
    }
    let malformed = || AutoencoderError::invalid_file(path, "malformed torch pickle");
    let cannot = |e: candle_core::Error| {
        AutoencoderError::invalid_file(path, format!("cannot read torch pickle: {e}"))
    };
    let pth = std::panic::catch_unwind(|| candle_core::pickle::PthTensors::new(path, None))
        .map_err(|_| malformed())?
        .map_err(cannot)?;
    check_pickle_sizes(path, &pth)?;
    let mut names: Vec<&String> = pth.tensor_infos().keys().collect();
    names.sort();
    let mut out = HashMap::new();
    for name in names {
        let t = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pth.get(name)))
            .map_err(|_| malformed())?
            .map_err(cannot)?;
        if let Some(t) = t {
            out.insert(name.clone(), t.to_device(device)?);
        }
    }
    Ok(out)
}

/// Checks that every tensor a torch pickle declares fits in the bytes of its storage entry,
/// before any tensor is read (a damaged shape cannot make the reader allocate more than the
/// file holds).
fn check_pickle_sizes(path: &Path, pth: &candle_core::pickle::PthTensors) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| AutoencoderError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| AutoencoderError::invalid_file(path, format!("not a zip archive: {e}")))?;
    for info in pth.tensor_infos().values() {
        let layout = &info.layout;
        let need = layout
            .dims()
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .and_then(|n| n.checked_add(layout.start_offset()))
            .and_then(|n| n.checked_mul(info.dtype.size_in_bytes()));
        let have = zip.by_name(&info.path).map(|e| e.size()).map_err(|e| {
            AutoencoderError::invalid_file(
                path,
                format!(
                    "tensor `{}`: no storage entry {}: {e}",
                    info.name, info.path
                ),
            )
        })?;
        match need {
            Some(n) if (n as u64) <= have => {}
            _ => {
                return Err(AutoencoderError::invalid_file(
                    path,
                    format!(
                    "tensor `{}` of shape {:?} needs more bytes than its storage holds ({have})",
                    info.name,
                    layout.dims()
                ),
                ))
            }
        }
    }
    Ok(())
}

/// `tensors` serialized as a safetensors file, in memory (each tensor made contiguous, its
/// layout and bits kept).
pub fn safetensors_bytes(tensors: &HashMap<String, Tensor>) -> Result<Vec<u8>> {
    let contiguous: Vec<(&str, Tensor)> = tensors
        .iter()
        .map(|(k, t)| Ok((k.as_str(), t.contiguous()?)))
        .collect::<Result<_>>()?;
    safetensors::tensor::serialize(contiguous, None)
        .map_err(|e| AutoencoderError::InvalidArgument(format!("cannot serialize tensors: {e}")))
}

/// Writes `tensors` to a safetensors file, atomically (see [`crate::atomic::write_file`]):
/// a failed write leaves an existing file as it was.
pub fn write_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let bytes = safetensors_bytes(tensors)?;
    crate::atomic::write_file(path, &bytes).map_err(|e| AutoencoderError::io(path, e))
}

impl AutoencoderLayer {
    /// Saves the weights to a safetensors file under pyvene's names (`encoder.0.weight`,
    /// `encoder.0.bias`, `decoder.0.weight`, `decoder.0.bias`), bit-exact.
    ///
    /// ```
    /// use candle_core::{DType, Device};
    /// use vene_autoencoder::{Autoencoder, AutoencoderLayer};
    ///
    /// let dir = tempfile::tempdir().unwrap();
    /// let path = dir.path().join("ae.safetensors");
    /// let ae = AutoencoderLayer::new(8, 24, DType::F32, &Device::Cpu)?;
    /// ae.save(&path)?;
    /// let back = AutoencoderLayer::load(&path, &Device::Cpu)?;
    /// assert_eq!((back.input_dim(), back.latent_dim()), (8, 24));
    /// # Ok::<(), vene_autoencoder::AutoencoderError>(())
    /// ```
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let tensors: HashMap<String, Tensor> = self.state_dict().into_iter().collect();
        write_safetensors(&tensors, path.as_ref())
    }

    /// Loads weights saved by [`AutoencoderLayer::save`] or a pyvene state dict in safetensors
    /// (names with or without the `autoencoder.` prefix). `input_dim` and `latent_dim` are read
    /// from the shapes; the orientation is decided from them (see [`crate::load_sae`]).
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let path = path.as_ref();
        let tensors = read_safetensors(path, device)?;
        let prefix = if tensors.contains_key(ENCODER_WEIGHT) {
            ""
        } else {
            "autoencoder."
        };
        layer_from_map(&tensors, prefix, &path.display().to_string())
    }
}

/// Builds an [`AutoencoderLayer`] from a map holding `{prefix}encoder.0.weight` and the rest,
/// deciding the weights' orientation from the biases' widths.
pub(crate) fn layer_from_map(
    tensors: &HashMap<String, Tensor>,
    prefix: &str,
    source: &str,
) -> Result<AutoencoderLayer> {
    let get = |name: &str| -> Result<Tensor> {
        let key = format!("{prefix}{name}");
        tensors
            .get(&key)
            .cloned()
            .ok_or_else(|| AutoencoderError::MissingTensor {
                file: source.to_string(),
                tensor: key,
            })
    };
    let ew_name = format!("{prefix}{ENCODER_WEIGHT}");
    let eb_name = format!("{prefix}{ENCODER_BIAS}");
    let dw_name = format!("{prefix}{DECODER_WEIGHT}");
    let db_name = format!("{prefix}{DECODER_BIAS}");
    let (ew, eb, dw, db) = (
        get(ENCODER_WEIGHT)?,
        get(ENCODER_BIAS)?,
        get(DECODER_WEIGHT)?,
        get(DECODER_BIAS)?,
    );
    let d = crate::loaders::vector_len(source, &db_name, &db)?;
    let l = crate::loaders::vector_len(source, &eb_name, &eb)?;
    let ew = crate::loaders::in_layout(source, &ew_name, ew, [l, d])?;
    let dw = crate::loaders::in_layout(source, &dw_name, dw, [d, l])?;
    AutoencoderLayer::from_parts(
        source,
        [
            Part::new(&ew_name, ew),
            Part::new(&eb_name, eb),
            Part::new(&dw_name, dw),
            Part::new(&db_name, db),
        ],
    )
}
