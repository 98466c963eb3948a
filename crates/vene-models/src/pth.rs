//! Reading PyTorch checkpoints (`pytorch_model.bin`, `torch.save`'s zip format) with every
//! tensor's size checked against its storage before anything is read.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use candle_core::pickle::PthTensors;
use candle_core::Tensor;

use crate::{ModelError, Result};

fn corrupt(path: &Path, reason: impl std::fmt::Display) -> ModelError {
    ModelError::CorruptWeights {
        file: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Every tensor of the PyTorch checkpoint at `path`, on the CPU.
///
/// A missing file is [`ModelError::Io`]; a file that is not a zip-format checkpoint (the
/// legacy pre-1.6 format, a truncated download), a tensor larger than its storage, or a pickle
/// the reader cannot follow is [`ModelError::CorruptWeights`] naming the file.
pub(crate) fn read_pth(path: &Path) -> Result<HashMap<String, Tensor>> {
    let mut file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() || &magic != b"PK\x03\x04" {
        return Err(corrupt(
            path,
            "not a zip-format PyTorch checkpoint (truncated, or saved by torch < 1.6: re-save it \
             with a current torch or convert it to safetensors)",
        ));
    }
    drop(file);
    // candle's pickle reader panics on some malformed pickles: a panic is a corrupt file.
    let pth = std::panic::catch_unwind(|| PthTensors::new(path, None))
        .map_err(|_| corrupt(path, "malformed pickle"))?
        .map_err(|e| corrupt(path, format!("cannot read the checkpoint: {e}")))?;
    check_sizes(path, &pth)?;
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| corrupt(path, format!("not a zip archive: {e}")))?;
    let mut names: Vec<&String> = pth.tensor_infos().keys().collect();
    names.sort();
    let mut out = HashMap::with_capacity(names.len());
    for name in names {
        let info = &pth.tensor_infos()[name];
        out.insert(name.clone(), read_tensor(path, &mut zip, info)?);
    }
    if out.is_empty() {
        return Err(corrupt(path, "the checkpoint holds no tensors"));
    }
    Ok(out)
}

/// One tensor: its storage entry read whole, then the (C- or Fortran-contiguous) view the
/// pickle describes, from its storage offset.
fn read_tensor<R: std::io::Read + std::io::Seek>(
    path: &Path,
    zip: &mut zip::ZipArchive<R>,
    info: &candle_core::pickle::TensorInfo,
) -> Result<Tensor> {
    let layout = &info.layout;
    let dims = layout.dims().to_vec();
    let numel: usize = dims.iter().product();
    let fortran = dims.len() > 1 && !layout.is_contiguous() && layout.is_fortran_contiguous();
    if !layout.is_contiguous() && !fortran {
        return Err(corrupt(
            path,
            format!(
                "tensor '{}' is stored strided (stride {:?}); save it contiguous",
                info.name,
                layout.stride()
            ),
        ));
    }
    let mut entry = zip.by_name(&info.path).map_err(|e| {
        corrupt(
            path,
            format!("tensor '{}': no storage {}: {e}", info.name, info.path),
        )
    })?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry.read_to_end(&mut bytes).map_err(|e| {
        corrupt(
            path,
            format!("tensor '{}': cannot read {}: {e}", info.name, info.path),
        )
    })?;
    // The storage offset, in bytes (as candle's reader keeps it); sizes were checked.
    let start = layout.start_offset();
    let end = start + numel * info.dtype.size_in_bytes();
    let data = bytes.get(start..end).ok_or_else(|| {
        corrupt(
            path,
            format!("tensor '{}' runs past the end of its storage", info.name),
        )
    })?;
    if fortran {
        let reversed: Vec<usize> = dims.iter().rev().copied().collect();
        let order: Vec<usize> = (0..dims.len()).rev().collect();
        let t = Tensor::from_raw_buffer(data, info.dtype, &reversed, &candle_core::Device::Cpu)?;
        Ok(t.permute(order)?.contiguous()?)
    } else {
        Ok(Tensor::from_raw_buffer(
            data,
            info.dtype,
            &dims,
            &candle_core::Device::Cpu,
        )?)
    }
}

/// Checks that each tensor the pickle declares fits in the bytes of its storage entry.
fn check_sizes(path: &Path, pth: &PthTensors) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| corrupt(path, format!("not a zip archive: {e}")))?;
    for info in pth.tensor_infos().values() {
        let layout = &info.layout;
        // candle's reader keeps the storage offset in bytes; the last element read sits at
        // offset + sum((dim - 1) * stride) elements past it.
        let elem = info.dtype.size_in_bytes();
        let mut last = Some(0usize);
        for (&d, &s) in layout.dims().iter().zip(layout.stride()) {
            last = match d {
                0 => None,
                _ => last.and_then(|l| (d - 1).checked_mul(s).and_then(|x| l.checked_add(x))),
            };
        }
        let need = if layout.dims().contains(&0) {
            Some(layout.start_offset())
        } else {
            last.and_then(|l| l.checked_add(1))
                .and_then(|n| n.checked_mul(elem))
                .and_then(|n| n.checked_add(layout.start_offset()))
        };
        let have = zip.by_name(&info.path).map(|e| e.size()).map_err(|e| {
            corrupt(
                path,
                format!("tensor '{}': no storage {}: {e}", info.name, info.path),
            )
        })?;
        match need {
            Some(n) if (n as u64) <= have => {}
            _ => {
                return Err(corrupt(
                    path,
                    format!(
                    "tensor '{}' of shape {:?} needs more bytes than its storage holds ({have})",
                    info.name,
                    layout.dims()
                ),
                ))
            }
        }
    }
    Ok(())
}
