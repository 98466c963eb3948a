//! A linear layer `x W^T + b` (or `x W + b`) with the bias fused into the matmul on the CPU.

use candle_core::{CpuStorage, CustomOp3, Layout, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use crate::error::{KernelError, Result};
use crate::fast::{f32_slice, fast_path, PAR_MIN_ELEMS};

const OP: &str = "linear";

/// How a linear layer's weight is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WeightLayout {
    /// `[out, in]`, as PyTorch's `nn.Linear`: `y = x W^T + b`.
    OutIn,
    /// `[in, out]`, as GPT-2's `Conv1D`: `y = x W + b`.
    InOut,
}

#[derive(Debug, Clone, Copy)]
struct LinearOp {
    rows: usize,
    d_in: usize,
    d_out: usize,
    layout: WeightLayout,
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "vene-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, self.name())?;
        let w = f32_slice(s2, l2, self.name())?;
        let b = f32_slice(s3, l3, self.name())?;
        let Self {
            rows,
            d_in,
            d_out,
            layout,
        } = *self;
        if x.len() != rows * d_in || w.len() != d_in * d_out || b.len() != d_out {
            candle_core::bail!("{}: internal size mismatch", self.name());
        }
        let n = rows * d_out;
        let mut out: Vec<f32> = crate::alloc::output_buffer(n);
        out.resize(n, 0.0);
        // The destination starts as the bias on every row; the gemm adds x W to it.
        let fill = |row: &mut [f32]| row.copy_from_slice(b);
        if n >= PAR_MIN_ELEMS {
            out.par_chunks_mut(d_out).for_each(fill);
        } else {
            out.chunks_mut(d_out).for_each(fill);
        }
        // (row stride, column stride) of the weight read as the [d_in, d_out] right operand.
        let (w_rs, w_cs) = match layout {
            WeightLayout::InOut => (d_out, 1),
            WeightLayout::OutIn => (1, d_in),
        };
        let threads = candle_core::utils::get_num_threads();
        let parallelism = if threads > 1 {
            Parallelism::Rayon(threads)
        } else {
            Parallelism::None
        };
        // SAFETY: x is [rows, d_in] row-major, w holds d_in * d_out elements reached through
        // (w_rs, w_cs) for indices below (d_in, d_out), out is [rows, d_out] row-major,
        // initialised (read_dst) and exclusively borrowed; the sizes were checked above.
        unsafe {
            gemm::gemm(
                rows,
                d_out,
                d_in,
                out.as_mut_ptr(),
                1,
                d_out as isize,
                true,
                x.as_ptr(),
                1,
                d_in as isize,
                w.as_ptr(),
                w_cs as isize,
                w_rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
        let mut dims = l1.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = d_out;
        }
        Ok((CpuStorage::F32(out), Shape::from(dims)))
    }
}

/// A linear layer on `x` `[.., in]`: `x W^T + b` for a `[out, in]` weight
/// ([`WeightLayout::OutIn`]) or `x W + b` for `[in, out]` ([`WeightLayout::InOut`]); returns
/// `[.., out]`. The weight is used as stored (no transposed copy).
///
/// CPU fast path (with a bias; all f32, contiguous, untracked, kernels not forced off): the
/// output is first filled with the bias rows and a gemm accumulates `x W` into it, so the bias
/// costs no separate pass and no second buffer. Otherwise `matmul` then `broadcast_add`.
///
/// # Errors
/// [`KernelError::BadShape`] when `x` is a scalar, the weight is not 2-D with `in` equal to the
/// last dimension of `x`, or the bias is not `[out]`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use vene_kernels::{linear, WeightLayout};
/// let dev = Device::Cpu;
/// let x = Tensor::new(&[[1f32, 2.]], &dev)?;
/// let w = Tensor::new(&[[1f32, 0.], [1., 1.], [0., 3.]], &dev)?; // [out 3, in 2]
/// let b = Tensor::new(&[0.5f32, 0., -1.], &dev)?;
/// let y = linear(&x, &w, Some(&b), WeightLayout::OutIn)?;
/// assert_eq!(y.to_vec2::<f32>()?, [[1.5, 3., 5.]]);
/// let y = linear(&x, &w.t()?.contiguous()?, Some(&b), WeightLayout::InOut)?;
/// assert_eq!(y.to_vec2::<f32>()?, [[1.5, 3., 5.]]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn linear(
    x: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    layout: WeightLayout,
) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let Some(&d_in) = dims.last() else {
        return Err(KernelError::BadShape {
            op: OP,
            detail: "input must have at least one dimension, got a scalar".into(),
        });
    };
    let (w_in, d_out) = match (weight.dims(), layout) {
        (&[o, i], WeightLayout::OutIn) => (i, o),
        (&[i, o], WeightLayout::InOut) => (i, o),
        _ => (usize::MAX, 0),
    };
    if w_in != d_in {
        return Err(KernelError::BadShape {
            op: OP,
            detail: format!(
                "weight {:?} ({layout:?}) does not take inputs of width {d_in} (input {dims:?})",
                weight.dims()
            ),
        });
    }
    if let Some(b) = bias {
        if b.dims() != [d_out] {
            return Err(KernelError::BadShape {
                op: OP,
                detail: format!("bias must be [{d_out}], got {:?}", b.dims()),
            });
        }
    }
    let rows = x.elem_count() / d_in.max(1);
    if let Some(b) = bias {
        if rows * d_in * d_out > 0 && fast_path(&[x, weight, b]) {
            let op = LinearOp {
                rows,
                d_in,
                d_out,
                layout,
            };
            return Ok(x.apply_op3_no_bwd(weight, b, &op)?);
        }
    }
    let x2 = x.reshape((rows, d_in))?;
    let y = match layout {
        WeightLayout::InOut => x2.matmul(weight)?,
        WeightLayout::OutIn => x2.matmul(&weight.t()?)?,
    };
    let y = match bias {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut out_dims = dims;
    if let Some(last) = out_dims.last_mut() {
        *last = d_out;
    }
    Ok(y.reshape(out_dims)?)
}
