//! A linear layer `x W^T + b` (or `x W + b`) with the bias fused into the matmul on the CPU.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::error::{KernelError, Result};
use crate::fast::{f32_slice, fast_path, PAR_MIN_ELEMS};
use crate::sgemm::Operands;

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

impl LinearOp {
    /// `x W (+ b)` into a fresh buffer: the output starts as the bias rows (or zeros) and the
    /// matrix product accumulates into it, so the bias costs no separate pass.
    fn compute(&self, x: &[f32], w: &[f32], b: Option<&[f32]>) -> candle_core::Result<Vec<f32>> {
        let Self {
            rows,
            d_in,
            d_out,
            layout,
        } = *self;
        if x.len() != rows * d_in || w.len() != d_in * d_out || b.is_some_and(|b| b.len() != d_out)
        {
            candle_core::bail!("vene-linear: internal size mismatch");
        }
        let n = rows * d_out;
        let mut out: Vec<f32> = crate::alloc::output_buffer(n);
        out.resize(n, 0.0);
        if let Some(b) = b {
            let fill = |row: &mut [f32]| row.copy_from_slice(b);
            if n >= PAR_MIN_ELEMS {
                out.par_chunks_mut(d_out).for_each(fill);
            } else {
                out.chunks_mut(d_out).for_each(fill);
            }
        }
        let threads = candle_core::utils::get_num_threads();
        let ops = Operands {
            m: rows,
            k: d_in,
            n: d_out,
            a: x,
            w,
            layout,
        };
        crate::sgemm::matmul_acc(ops, &mut out, threads);
        Ok(out)
    }

    /// The output shape: `x`'s with the last dimension `d_out`.
    fn shape(&self, x: &Layout) -> Shape {
        let mut dims = x.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = self.d_out;
        }
        Shape::from(dims)
    }
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
        let x = f32_slice(s1, l1, CustomOp3::name(self))?;
        let w = f32_slice(s2, l2, CustomOp3::name(self))?;
        let b = f32_slice(s3, l3, CustomOp3::name(self))?;
        Ok((
            CpuStorage::F32(self.compute(x, w, Some(b))?),
            self.shape(l1),
        ))
    }
}

impl CustomOp2 for LinearOp {
    fn name(&self) -> &'static str {
        "vene-linear-no-bias"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = f32_slice(s1, l1, CustomOp2::name(self))?;
        let w = f32_slice(s2, l2, CustomOp2::name(self))?;
        Ok((CpuStorage::F32(self.compute(x, w, None)?), self.shape(l1)))
    }
}

/// A linear layer on `x` `[.., in]`: `x W^T + b` for a `[out, in]` weight
/// ([`WeightLayout::OutIn`]) or `x W + b` for `[in, out]` ([`WeightLayout::InOut`]); returns
/// `[.., out]`. The weight is used as stored (no transposed copy).
///
/// CPU fast path (all f32, contiguous, untracked, kernels not forced off): the output is first
/// filled with the bias rows (or zeros) and the matrix product accumulates `x W` into it, so
/// the bias costs no separate pass and no second buffer. The product is one pass over the
/// weight for one or two rows, vene-kernels' own blocked gemm for up to 192 rows of an
/// `[in, out]` weight on AVX2 CPUs, and the gemm crate (candle's) otherwise. Off the fast
/// path: `matmul` then `broadcast_add`.
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
    let op = LinearOp {
        rows,
        d_in,
        d_out,
        layout,
    };
    if rows * d_in * d_out > 0 {
        match bias {
            Some(b) if fast_path(&[x, weight, b]) => {
                return Ok(x.apply_op3_no_bwd(weight, b, &op)?);
            }
            None if fast_path(&[x, weight]) => return Ok(x.apply_op2_no_bwd(weight, &op)?),
            _ => {}
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
