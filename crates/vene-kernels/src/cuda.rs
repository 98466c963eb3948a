//! The CUDA path: PTX from kernels/masked_swap.cu (compiled by build.rs), loaded through
//! candle's CUDA device and launched with cudarc's launch builder.
//!
//! Out of place, a small selection is a device copy of base plus a scatter kernel over the
//! selected columns; a large one (at least half of the elements) is one dense pass with a
//! byte mask per list, using 16-byte vector loads where width and alignment allow.
//! In place is the scatter kernel alone.

use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaDevice, CudaStorage, Layout};

use crate::combine::Combine;
use crate::op::{contiguous_range, source_stride};
use crate::selection::Selection;

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/masked_swap.ptx"));
const MODULE: &str = "vene_masked_swap";
const THREADS: u32 = 256;
/// Cap on blocks of the grid-stride kernels (plenty to fill any current GPU).
const MAX_BLOCKS: u64 = 1 << 16;

/// Shapes of one launch.
#[derive(Clone, Copy)]
struct Dims {
    rows: u64,
    width: u64,
    src_stride: u64,
    op: i32,
}

fn to_u32(v: usize, what: &str) -> candle_core::Result<u32> {
    u32::try_from(v).map_err(|_| {
        candle_core::Error::Msg(format!(
            "masked swap (cuda): {what} {v} does not fit in u32"
        ))
    })
}

/// Launches the scatter kernel on `out` (which holds base), for the selection `sel`.
fn scatter<T: DeviceRepr>(
    dev: &CudaDevice,
    out: &mut CudaSlice<T>,
    src: &CudaView<'_, T>,
    sel: &Selection,
    d: Dims,
    name: &str,
) -> candle_core::Result<()> {
    let (offsets, indices, rows_per_list) = sel.csr();
    if indices.is_empty() || d.rows == 0 {
        return Ok(());
    }
    let offsets = offsets
        .iter()
        .map(|&o| to_u32(o, "selection size"))
        .collect::<candle_core::Result<Vec<u32>>>()?;
    let idx = indices
        .iter()
        .map(|&i| to_u32(i, "latent index"))
        .collect::<candle_core::Result<Vec<u32>>>()?;
    let max_len = offsets
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .max()
        .unwrap_or(0);
    let offsets = dev.clone_htod(offsets.as_slice())?;
    let idx = dev.clone_htod(idx.as_slice())?;
    let threads = max_len.div_ceil(32).clamp(1, THREADS / 32) * 32;
    let grid_y = max_len.div_ceil(threads).clamp(1, 1024);
    let grid_x = d.rows.clamp(1, 65535) as u32;
    let cfg = LaunchConfig {
        grid_dim: (grid_x, grid_y, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    };
    let func = dev.get_or_load_custom_func(&format!("vene_scatter_{name}"), MODULE, PTX)?;
    let mut b = func.builder();
    let rpl = rows_per_list as u64;
    b.arg(out);
    b.arg(src);
    b.arg(&offsets);
    b.arg(&idx);
    b.arg(&d.rows);
    b.arg(&d.width);
    b.arg(&d.src_stride);
    b.arg(&rpl);
    b.arg(&d.op);
    // SAFETY: the argument list matches `vene_scatter_*`; indices are < width (validated)
    // and every row / source row lies inside `out` / `src` (checked by the caller).
    unsafe { b.launch(cfg) }.w()?;
    Ok(())
}

/// One dense pass `out = mask ? op(base, src) : base`.
#[allow(clippy::too_many_arguments)]
fn dense<T: DeviceRepr>(
    dev: &CudaDevice,
    base: &CudaView<'_, T>,
    src: &CudaView<'_, T>,
    out: &mut CudaSlice<T>,
    sel: &Selection,
    d: Dims,
    vec: bool,
    name: &str,
) -> candle_core::Result<()> {
    let (_, _, rows_per_list) = sel.csr();
    let mask = dev.clone_htod(sel.lists_mask().as_slice())?;
    let elem_per_unit = if vec {
        16 / std::mem::size_of::<T>() as u64
    } else {
        1
    };
    let units = d.rows * d.width / elem_per_unit;
    let blocks = units.div_ceil(THREADS as u64).clamp(1, MAX_BLOCKS) as u32;
    let cfg = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let kernel = if vec { "vene_dense_vec" } else { "vene_dense" };
    let func = dev.get_or_load_custom_func(&format!("{kernel}_{name}"), MODULE, PTX)?;
    let mut b = func.builder();
    let rpl = rows_per_list as u64;
    b.arg(base);
    b.arg(src);
    b.arg(&mask);
    b.arg(out);
    b.arg(&d.rows);
    b.arg(&d.width);
    b.arg(&d.src_stride);
    b.arg(&rpl);
    b.arg(&d.op);
    // SAFETY: the argument list matches `vene_dense*_*`; sizes were checked by the caller,
    // and for the vector kernel width, stride and offsets are multiples of the vector width.
    unsafe { b.launch(cfg) }.w()?;
    Ok(())
}

/// Checks the sizes of the views against the selection.
fn check_sizes(
    base_len: usize,
    src_len: usize,
    sel: &Selection,
    src_stride: usize,
) -> candle_core::Result<()> {
    let want_src = if src_stride == 0 {
        sel.width()
    } else {
        sel.rows() * sel.width()
    };
    if base_len != sel.rows() * sel.width() || src_len != want_src {
        candle_core::bail!("masked swap (cuda): internal size mismatch");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn new_typed<T: DeviceRepr + ValidAsZeroBits>(
    dev: &CudaDevice,
    base: &CudaSlice<T>,
    (b0, b1): (usize, usize),
    src: &CudaSlice<T>,
    (s0, s1): (usize, usize),
    src_stride: usize,
    sel: &Selection,
    op: Combine,
    name: &str,
) -> candle_core::Result<CudaSlice<T>> {
    check_sizes(b1 - b0, s1 - s0, sel, src_stride)?;
    let n = b1 - b0;
    if n == 0 {
        return dev.alloc_zeros::<T>(0);
    }
    let base = base.slice(b0..b1);
    let src = src.slice(s0..s1);
    let d = Dims {
        rows: sel.rows() as u64,
        width: sel.width() as u64,
        src_stride: src_stride as u64,
        op: op.code(),
    };
    // SAFETY: fully written below, by the copy or by the dense kernel.
    let mut out = unsafe { dev.alloc::<T>(n)? };
    let lists = sel.csr().0.len().saturating_sub(1);
    let selected = sel.selected_elems();
    if selected * 2 >= n && lists * sel.width() <= n {
        let v = 16 / std::mem::size_of::<T>();
        let vec = sel.width() % v == 0
            && src_stride % v == 0
            && b0 % v == 0
            && s0 % v == 0
            && 16 % std::mem::size_of::<T>() == 0;
        dense(dev, &base, &src, &mut out, sel, d, vec, name)?;
    } else {
        dev.memcpy_dtod(&base, &mut out)?;
        scatter(dev, &mut out, &src, sel, d, name)?;
    }
    Ok(out)
}

/// Out-of-place masked combine on CUDA storages (contiguous layouts).
pub(crate) fn combine_new(
    s1: &CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
    sel: &Selection,
    op: Combine,
) -> candle_core::Result<CudaStorage> {
    let dev = &s1.device;
    let br = contiguous_range(l1, "base")?;
    let sr = contiguous_range(l2, "source")?;
    let stride = source_stride(l1, l2, sel.width());
    let slice = match (&s1.slice, &s2.slice) {
        (CudaStorageSlice::F32(b), CudaStorageSlice::F32(s)) => {
            CudaStorageSlice::F32(new_typed(dev, b, br, s, sr, stride, sel, op, "f32")?)
        }
        (CudaStorageSlice::F64(b), CudaStorageSlice::F64(s)) => {
            CudaStorageSlice::F64(new_typed(dev, b, br, s, sr, stride, sel, op, "f64")?)
        }
        (CudaStorageSlice::F16(b), CudaStorageSlice::F16(s)) => {
            CudaStorageSlice::F16(new_typed(dev, b, br, s, sr, stride, sel, op, "f16")?)
        }
        (CudaStorageSlice::BF16(b), CudaStorageSlice::BF16(s)) => {
            CudaStorageSlice::BF16(new_typed(dev, b, br, s, sr, stride, sel, op, "bf16")?)
        }
        _ => candle_core::bail!("masked swap (cuda): unsupported or mismatched dtypes"),
    };
    Ok(CudaStorage {
        slice,
        device: dev.clone(),
    })
}

#[allow(clippy::too_many_arguments)]
fn inplace_typed<T: DeviceRepr>(
    dev: &CudaDevice,
    base: &mut CudaSlice<T>,
    (b0, b1): (usize, usize),
    src: &CudaSlice<T>,
    (s0, s1): (usize, usize),
    src_stride: usize,
    sel: &Selection,
    op: Combine,
    name: &str,
) -> candle_core::Result<()> {
    check_sizes(b1 - b0, s1 - s0, sel, src_stride)?;
    if b1 == b0 {
        return Ok(());
    }
    let d = Dims {
        rows: sel.rows() as u64,
        width: sel.width() as u64,
        src_stride: src_stride as u64,
        op: op.code(),
    };
    let src = src.slice(s0..s1);
    if b0 == 0 && b1 == base.len() {
        scatter(dev, base, &src, sel, d, name)
    } else {
        // A view of base: copy the window out, scatter, copy back (rare: narrowed bases).
        // SAFETY: fully written by the copy on the next line.
        let mut tmp = unsafe { dev.alloc::<T>(b1 - b0)? };
        dev.memcpy_dtod(&base.slice(b0..b1), &mut tmp)?;
        scatter(dev, &mut tmp, &src, sel, d, name)?;
        let mut window = base.slice_mut(b0..b1);
        dev.memcpy_dtod(&tmp, &mut window)
    }
}

/// In-place masked combine on CUDA storages (contiguous layouts).
pub(crate) fn combine_inplace(
    s1: &mut CudaStorage,
    l1: &Layout,
    s2: &CudaStorage,
    l2: &Layout,
    sel: &Selection,
    op: Combine,
) -> candle_core::Result<()> {
    let dev = s1.device.clone();
    let br = contiguous_range(l1, "base")?;
    let sr = contiguous_range(l2, "source")?;
    let stride = source_stride(l1, l2, sel.width());
    match (&mut s1.slice, &s2.slice) {
        (CudaStorageSlice::F32(b), CudaStorageSlice::F32(s)) => {
            inplace_typed(&dev, b, br, s, sr, stride, sel, op, "f32")
        }
        (CudaStorageSlice::F64(b), CudaStorageSlice::F64(s)) => {
            inplace_typed(&dev, b, br, s, sr, stride, sel, op, "f64")
        }
        (CudaStorageSlice::F16(b), CudaStorageSlice::F16(s)) => {
            inplace_typed(&dev, b, br, s, sr, stride, sel, op, "f16")
        }
        (CudaStorageSlice::BF16(b), CudaStorageSlice::BF16(s)) => {
            inplace_typed(&dev, b, br, s, sr, stride, sel, op, "bf16")
        }
        _ => candle_core::bail!("masked swap (cuda): unsupported or mismatched dtypes"),
    }
}
