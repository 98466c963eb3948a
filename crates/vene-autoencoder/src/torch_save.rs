//! Writing torch zip pickles, the format of `torch.save(state_dict, path)` that
//! `torch.load` reads back: a zip archive (entries stored, tensor data aligned to 64 bytes)
//! holding `archive/data.pkl` (a protocol-2 pickle of an `OrderedDict` of tensors, each rebuilt
//! by `torch._utils._rebuild_tensor_v2` over a persistent storage id), one
//! `archive/data/<i>` entry per tensor (its bytes, little-endian, row-major),
//! `archive/version`, `archive/byteorder`, `archive/.format_version` and
//! `archive/.storage_alignment`, as recent torch writes them.
//!
//! ```
//! use candle_core::{Device, Tensor};
//! use vene_autoencoder::{read_torch_pickle, write_torch_pickle};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("state.bin");
//! let w = Tensor::new(&[[1f32, 2.], [3., 4.]], &Device::Cpu)?;
//! let n = Tensor::new(7i64, &Device::Cpu)?;
//! write_torch_pickle(&path, &[("weight".into(), w), ("embed_dim".into(), n)])?;
//! let back = read_torch_pickle(&path, &Device::Cpu)?;
//! assert_eq!(back["weight"].to_vec2::<f32>()?, vec![vec![1., 2.], vec![3., 4.]]);
//! assert_eq!(back["embed_dim"].to_scalar::<i64>()?, 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::io::{Cursor, Write};
use std::path::Path;

use candle_core::{DType, Tensor};
use zip::write::SimpleFileOptions;

use crate::{AutoencoderError, Result};

/// The name of the folder inside the archive (what `torch.save` to a buffer uses).
const ARCHIVE: &str = "archive";
/// The alignment of tensor data inside the archive, as torch writes it.
const STORAGE_ALIGNMENT: u16 = 64;

/// torch's storage class and the element size of a dtype torch can rebuild.
fn storage_class(dtype: DType) -> Option<&'static str> {
    match dtype {
        DType::F32 => Some("FloatStorage"),
        DType::F64 => Some("DoubleStorage"),
        DType::F16 => Some("HalfStorage"),
        DType::BF16 => Some("BFloat16Storage"),
        DType::I64 => Some("LongStorage"),
        DType::U8 => Some("ByteStorage"),
        _ => None,
    }
}

/// The little-endian bytes of `t`'s elements, row-major.
fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let flat = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::F32 => flat
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::F64 => flat
            .to_vec1::<f64>()?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::F16 => flat
            .to_vec1::<half::f16>()?
            .iter()
            .flat_map(|x| x.to_bits().to_le_bytes())
            .collect(),
        DType::BF16 => flat
            .to_vec1::<half::bf16>()?
            .iter()
            .flat_map(|x| x.to_bits().to_le_bytes())
            .collect(),
        DType::I64 => flat
            .to_vec1::<i64>()?
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect(),
        DType::U8 => flat.to_vec1::<u8>()?,
        other => {
            return Err(AutoencoderError::DTypeMismatch(format!(
                "torch pickles hold f32, f64, f16, bf16, i64 or u8 tensors, not {other:?}"
            )))
        }
    })
}

/// A protocol-2 pickle, built opcode by opcode.
struct Pickle(Vec<u8>);

impl Pickle {
    fn op(&mut self, op: u8) {
        self.0.push(op);
    }
    fn global(&mut self, module: &str, name: &str) {
        self.op(b'c');
        self.0.extend_from_slice(module.as_bytes());
        self.op(b'\n');
        self.0.extend_from_slice(name.as_bytes());
        self.op(b'\n');
    }
    fn string(&mut self, s: &str) {
        self.op(b'X'); // BINUNICODE
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: u64) {
        if v < 256 {
            self.op(b'K'); // BININT1
            self.op(v as u8);
        } else if v < 65536 {
            self.op(b'M'); // BININT2
            self.0.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v < (1 << 31) {
            self.op(b'J'); // BININT
            self.0.extend_from_slice(&(v as i32).to_le_bytes());
        } else {
            // LONG1: little-endian two's complement, here 8 bytes and a 0 sign byte
            self.op(0x8a);
            self.op(9);
            self.0.extend_from_slice(&v.to_le_bytes());
            self.op(0);
        }
    }
    fn int_tuple(&mut self, vals: &[usize]) {
        match vals.len() {
            0 => self.op(b')'), // EMPTY_TUPLE
            1..=3 => {
                vals.iter().for_each(|&v| self.int(v as u64));
                self.op([0x85, 0x86, 0x87][vals.len() - 1]); // TUPLE1..3
            }
            _ => {
                self.op(b'('); // MARK
                vals.iter().for_each(|&v| self.int(v as u64));
                self.op(b't'); // TUPLE
            }
        }
    }
    /// `collections.OrderedDict()`.
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(b')');
        self.op(b'R'); // REDUCE
    }
}

/// Row-major strides of `dims`.
fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// The pickle of an `OrderedDict` mapping each name to a tensor over storage `i` (`i` its
/// position in `tensors`).
fn state_dict_pickle(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let mut p = Pickle(vec![0x80, 2]); // PROTO 2
    p.ordered_dict();
    p.op(b'('); // MARK
    for (i, (name, t)) in tensors.iter().enumerate() {
        let class = storage_class(t.dtype()).ok_or_else(|| {
            AutoencoderError::DTypeMismatch(format!(
                "tensor `{name}`: torch pickles hold f32, f64, f16, bf16, i64 or u8 tensors, \
                 not {:?}",
                t.dtype()
            ))
        })?;
        p.string(name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.op(b'(');
        // the persistent id: ('storage', torch.<X>Storage, key, location, numel)
        p.op(b'(');
        p.string("storage");
        p.global("torch", class);
        p.string(&i.to_string());
        p.string("cpu");
        p.int(t.elem_count() as u64);
        p.op(b't');
        p.op(b'Q'); // BINPERSID
        p.int(0); // storage offset
        p.int_tuple(t.dims());
        p.int_tuple(&strides(t.dims()));
        p.op(0x89); // NEWFALSE: requires_grad
        p.ordered_dict(); // backward hooks
        p.op(b't');
        p.op(b'R');
    }
    p.op(b'u'); // SETITEMS
    p.op(b'.'); // STOP
    Ok(p.0)
}

/// The bytes of a torch zip pickle of `tensors` (a state dict, in this order), as
/// [`write_torch_pickle`] writes them. Tensors may be on any device; their dtype must be f32,
/// f64, f16, bf16, i64 or u8 (else [`AutoencoderError::DTypeMismatch`]), and names must be
/// unique (else [`AutoencoderError::InvalidArgument`]).
pub fn torch_pickle_bytes(tensors: &[(String, Tensor)]) -> Result<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    for (name, _) in tensors {
        if !seen.insert(name.as_str()) {
            return Err(AutoencoderError::InvalidArgument(format!(
                "tensor name `{name}` appears twice in a state dict"
            )));
        }
    }
    let pickle = state_dict_pickle(tensors)?;
    let zip_err = |e: zip::result::ZipError| {
        AutoencoderError::InvalidArgument(format!("cannot build the torch archive: {e}"))
    };
    let io_err = |e: std::io::Error| {
        AutoencoderError::InvalidArgument(format!("cannot build the torch archive: {e}"))
    };
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let stored = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(false);
    let aligned = stored.with_alignment(STORAGE_ALIGNMENT);
    let entry = |zip: &mut zip::ZipWriter<Cursor<Vec<u8>>>,
                 name: &str,
                 bytes: &[u8],
                 opts: SimpleFileOptions| {
        let opts = opts.large_file(bytes.len() as u64 >= u32::MAX as u64);
        zip.start_file(format!("{ARCHIVE}/{name}"), opts)
            .map_err(zip_err)?;
        zip.write_all(bytes).map_err(io_err)
    };
    entry(&mut zip, "data.pkl", &pickle, aligned)?;
    entry(&mut zip, ".format_version", b"1", stored)?;
    entry(
        &mut zip,
        ".storage_alignment",
        STORAGE_ALIGNMENT.to_string().as_bytes(),
        stored,
    )?;
    entry(&mut zip, "byteorder", b"little", stored)?;
    for (i, (_, t)) in tensors.iter().enumerate() {
        entry(&mut zip, &format!("data/{i}"), &tensor_bytes(t)?, aligned)?;
    }
    entry(&mut zip, "version", b"3\n", stored)?;
    Ok(zip.finish().map_err(zip_err)?.into_inner())
}

/// Writes `tensors` as a torch zip pickle at `path` (what `torch.save` of an `OrderedDict`
/// writes; `torch.load` and [`crate::read_torch_pickle`] read it back), atomically: on error
/// `path` is as it was. See [`torch_pickle_bytes`] for the tensors it takes.
pub fn write_torch_pickle(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let bytes = torch_pickle_bytes(tensors)?;
    crate::atomic::write_file(path, &bytes).map_err(|e| AutoencoderError::io(path, e))
}
