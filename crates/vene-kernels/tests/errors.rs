//! Bad input gets typed errors, never a panic.

use candle_core::{DType, Device, Tensor};
use vene_kernels::{
    masked_combine_rows, masked_swap, masked_swap_inplace, masked_swap_reference, Combine,
    KernelError,
};

fn zeros(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::zeros(shape, dtype, &Device::Cpu).unwrap()
}

#[test]
fn mismatched_shapes() {
    let base = zeros(&[2, 4], DType::F32);
    for bad in [&[2, 5][..], &[3, 4], &[5], &[2, 2, 4], &[8], &[1, 2, 4]] {
        let err = masked_swap(&base, &zeros(bad, DType::F32), &[0]).unwrap_err();
        assert!(
            matches!(&err, KernelError::ShapeMismatch { base_shape, source_shape }
                if base_shape.dims() == [2, 4] && source_shape.dims() == bad),
            "{bad:?}: {err}"
        );
        assert!(masked_swap_reference(&base, &zeros(bad, DType::F32), &[0]).is_err());
    }
    let err = masked_swap(&zeros(&[], DType::F32), &zeros(&[], DType::F32), &[]).unwrap_err();
    assert!(matches!(err, KernelError::ScalarInput));
}

#[test]
fn index_out_of_range_and_duplicates() {
    let base = zeros(&[2, 4], DType::F32);
    let err = masked_swap(&base, &base, &[1, 4]).unwrap_err();
    assert!(matches!(
        err,
        KernelError::IndexOutOfRange { index: 4, width: 4 }
    ));
    assert!(err.to_string().contains("4"));
    let err = masked_swap(&base, &base, &[3, 1, 3]).unwrap_err();
    assert!(matches!(err, KernelError::DuplicateIndex { index: 3 }));
    let err = masked_swap_inplace(&base, &zeros(&[2, 4], DType::F32), &[9]).unwrap_err();
    assert!(matches!(
        err,
        KernelError::IndexOutOfRange { index: 9, width: 4 }
    ));
}

#[test]
fn dtype_mismatch_and_unsupported() {
    let err = masked_swap(
        &zeros(&[2, 4], DType::F32),
        &zeros(&[2, 4], DType::F16),
        &[0],
    )
    .unwrap_err();
    assert!(matches!(
        err,
        KernelError::DTypeMismatch {
            base_dtype: DType::F32,
            source_dtype: DType::F16
        }
    ));
    let err =
        masked_swap(&zeros(&[2, 4], DType::U8), &zeros(&[2, 4], DType::U8), &[0]).unwrap_err();
    assert!(matches!(err, KernelError::UnsupportedDType(DType::U8)));
}

#[test]
fn per_row_list_count() {
    let base = zeros(&[2, 3, 4], DType::F32);
    let err = masked_combine_rows(&base, &base, &vec![vec![0]; 4], Combine::Replace).unwrap_err();
    assert!(matches!(
        err,
        KernelError::RowCountMismatch {
            lists: 4,
            rows: 6,
            examples: 2
        }
    ));
    let err = masked_combine_rows(&base, &base, &[vec![0], vec![4]], Combine::Replace).unwrap_err();
    assert!(matches!(
        err,
        KernelError::IndexOutOfRange { index: 4, width: 4 }
    ));
}

#[test]
fn inplace_needs_contiguous_base_and_distinct_storage() {
    let base = zeros(&[4, 2], DType::F32).t().unwrap();
    let err = masked_swap_inplace(&base, &zeros(&[2, 4], DType::F32), &[0]).unwrap_err();
    assert!(matches!(err, KernelError::NotContiguous));
    // Source sharing base's storage is refused by candle, as a typed error.
    let base = zeros(&[2, 4], DType::F32);
    let err = masked_swap_inplace(&base, &base, &[0]).unwrap_err();
    assert!(matches!(err, KernelError::Candle(_)));
}
