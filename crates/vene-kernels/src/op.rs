//! The candle custom ops: [`MaskedCombineOp`] (out of place, with backward) and
//! [`MaskedCombineInplace`] (into the base storage).

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, InplaceOp2, Layout, Shape, Tensor};

use crate::combine::Combine;
use crate::cpu;
use crate::selection::Selection;

/// Start and end of a contiguous layout, or an error (callers make inputs contiguous first).
pub(crate) fn contiguous_range(l: &Layout, what: &str) -> candle_core::Result<(usize, usize)> {
    l.contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("masked swap: {what} must be contiguous")))
}

/// Source row stride: `width` when source has the base shape, 0 when it is one broadcast row.
pub(crate) fn source_stride(base: &Layout, source: &Layout, width: usize) -> usize {
    if base.shape() == source.shape() {
        width
    } else {
        0
    }
}

/// The out-of-place masked combine as a candle `CustomOp2` on `(base, source)`.
#[derive(Debug, Clone)]
pub(crate) struct MaskedCombineOp {
    pub(crate) sel: Arc<Selection>,
    pub(crate) op: Combine,
}

macro_rules! cpu_dispatch {
    ($s1:expr, $s2:expr, |$b:ident, $s:ident| $body:expr, $wrap:ident) => {
        match ($s1, $s2) {
            (CpuStorage::F32($b), CpuStorage::F32($s)) => $wrap!(F32, $body),
            (CpuStorage::F64($b), CpuStorage::F64($s)) => $wrap!(F64, $body),
            (CpuStorage::F16($b), CpuStorage::F16($s)) => $wrap!(F16, $body),
            (CpuStorage::BF16($b), CpuStorage::BF16($s)) => $wrap!(BF16, $body),
            (b, s) => candle_core::bail!(
                "masked swap: unsupported dtypes {:?} / {:?}",
                b.dtype(),
                s.dtype()
            ),
        }
    };
}

macro_rules! wrap_storage {
    ($v:ident, $e:expr) => {
        CpuStorage::$v($e)
    };
}

macro_rules! wrap_unit {
    ($v:ident, $e:expr) => {
        $e
    };
}

impl CustomOp2 for MaskedCombineOp {
    fn name(&self) -> &'static str {
        "vene-masked-combine"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b0, b1) = contiguous_range(l1, "base")?;
        let (s0, s1r) = contiguous_range(l2, "source")?;
        let stride = source_stride(l1, l2, self.sel.width());
        let (sel, op) = (&*self.sel, self.op);
        let out = cpu_dispatch!(
            s1,
            s2,
            |b, s| cpu::combine_new(&b[b0..b1], &s[s0..s1r], stride, sel, op)?,
            wrap_storage
        );
        Ok((out, l1.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let out = crate::cuda::combine_new(s1, l1, s2, l2, &self.sel, self.op)?;
        Ok((out, l1.shape().clone()))
    }

    fn bwd(
        &self,
        base: &Tensor,
        source: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let width = self.sel.width();
        let zeros_row = Tensor::zeros(width, grad.dtype(), grad.device())?;
        // d out / d base: identity where unselected; where selected, 0 for Replace, 1 otherwise.
        let grad_base = match self.op {
            Combine::Replace => apply(&grad, &zeros_row, &self.sel, Combine::Replace)?,
            Combine::Add | Combine::Subtract => grad.clone(),
        };
        // d out / d source: the selected part of grad (negated for Subtract).
        let zeros = grad.zeros_like()?;
        let src_op = match self.op {
            Combine::Subtract => Combine::Subtract,
            Combine::Replace | Combine::Add => Combine::Replace,
        };
        let mut grad_source = apply(&zeros, &grad, &self.sel, src_op)?;
        if source.shape() != base.shape() {
            // Source was one row broadcast to every row: sum the rows' gradients.
            grad_source = grad_source
                .reshape((self.sel.rows(), width))?
                .sum(0)?
                .reshape(source.shape())?;
        }
        Ok((Some(grad_base), Some(grad_source)))
    }
}

/// Applies the op to tensors already validated against `sel` (made contiguous here).
pub(crate) fn apply(
    base: &Tensor,
    source: &Tensor,
    sel: &Arc<Selection>,
    op: Combine,
) -> candle_core::Result<Tensor> {
    let base = base.contiguous()?;
    let source = source.contiguous()?;
    base.apply_op2(
        &source,
        MaskedCombineOp {
            sel: Arc::clone(sel),
            op,
        },
    )
}

/// The in-place masked combine as a candle `InplaceOp2` (base is written, source read).
#[derive(Debug, Clone)]
pub(crate) struct MaskedCombineInplace {
    pub(crate) sel: Arc<Selection>,
    pub(crate) op: Combine,
}

impl InplaceOp2 for MaskedCombineInplace {
    fn name(&self) -> &'static str {
        "vene-masked-combine-inplace"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let (b0, b1) = contiguous_range(l1, "base")?;
        let (s0, s1r) = contiguous_range(l2, "source")?;
        let stride = source_stride(l1, l2, self.sel.width());
        let (sel, op) = (&*self.sel, self.op);
        cpu_dispatch!(
            s1,
            s2,
            |b, s| cpu::combine_inplace(&mut b[b0..b1], &s[s0..s1r], stride, sel, op)?,
            wrap_unit
        );
        Ok(())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &mut candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        crate::cuda::combine_inplace(s1, l1, s2, l2, &self.sel, self.op)
    }
}
