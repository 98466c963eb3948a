//! Property tests: the fused op equals the plain candle composition exactly.

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use vene_kernels::{
    masked_combine, masked_combine_inplace, masked_combine_reference, masked_combine_rows,
    masked_combine_rows_reference, Combine,
};

const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];
const OPS: [Combine; 3] = [Combine::Replace, Combine::Add, Combine::Subtract];

fn values(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn random(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::randn(0f32, 1., shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// A random selection: empty, one, all (in order or shuffled), or a random subset.
fn random_dims(width: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut all: Vec<usize> = (0..width).collect();
    match rng.random_range(0..5) {
        0 => vec![],
        1 => vec![rng.random_range(0..width)],
        2 => all,
        3 => {
            all.shuffle(rng);
            all
        }
        _ => {
            all.shuffle(rng);
            all.truncate(rng.random_range(0..=width));
            all
        }
    }
}

fn random_shape(rng: &mut StdRng) -> Vec<usize> {
    let width = rng.random_range(1..40);
    match rng.random_range(0..4) {
        0 => vec![width],
        1 => vec![rng.random_range(0..5), width],
        2 => vec![rng.random_range(1..4), rng.random_range(1..5), width],
        // Large enough for the multi-threaded path.
        _ => vec![rng.random_range(300..700), 257],
    }
}

#[test]
fn fused_equals_composition_on_random_inputs() {
    let mut rng = StdRng::seed_from_u64(42);
    for case in 0..120 {
        let shape = random_shape(&mut rng);
        let width = *shape.last().unwrap();
        let dtype = DTYPES[case % DTYPES.len()];
        let op = OPS[(case / 4) % OPS.len()];
        let base = random(&shape, dtype);
        let source = if rng.random_bool(0.25) {
            random(&[width], dtype)
        } else {
            random(&shape, dtype)
        };
        let dims = random_dims(width, &mut rng);
        let fused = masked_combine(&base, &source, &dims, op).unwrap();
        let reference = masked_combine_reference(&base, &source, &dims, op).unwrap();
        assert_eq!(fused.dtype(), dtype);
        assert_eq!(fused.shape(), base.shape());
        assert_eq!(
            values(&fused),
            values(&reference),
            "case {case}: {shape:?} {dtype:?} {op:?} dims {dims:?}"
        );

        let owned = base.copy().unwrap();
        masked_combine_inplace(&owned, &source, &dims, op).unwrap();
        assert_eq!(values(&owned), values(&reference), "in place, case {case}");
    }
}

#[test]
fn selection_matches_hand_derived_values() {
    // [2, 4], dims {3, 0}: out = base with columns 0 and 3 from source (or combined).
    let base = Tensor::new(&[[1f32, 2., 3., 4.], [5., 6., 7., 8.]], &Device::Cpu).unwrap();
    let source = Tensor::new(
        &[[10f32, 20., 30., 40.], [50., 60., 70., 80.]],
        &Device::Cpu,
    )
    .unwrap();
    let swap = masked_combine(&base, &source, &[3, 0], Combine::Replace).unwrap();
    assert_eq!(
        swap.to_vec2::<f32>().unwrap(),
        [[10., 2., 3., 40.], [50., 6., 7., 80.]]
    );
    let add = masked_combine(&base, &source, &[3, 0], Combine::Add).unwrap();
    assert_eq!(
        add.to_vec2::<f32>().unwrap(),
        [[11., 2., 3., 44.], [55., 6., 7., 88.]]
    );
    let sub = masked_combine(&base, &source, &[1], Combine::Subtract).unwrap();
    assert_eq!(
        sub.to_vec2::<f32>().unwrap(),
        [[1., -18., 3., 4.], [5., -54., 7., 8.]]
    );
    let none = masked_combine(&base, &source, &[], Combine::Replace).unwrap();
    assert_eq!(
        none.to_vec2::<f32>().unwrap(),
        base.to_vec2::<f32>().unwrap()
    );
}

#[test]
fn strided_inputs_are_handled() {
    let mut rng = StdRng::seed_from_u64(7);
    for dtype in DTYPES {
        // Transposed base: [6, 9] viewed from a [9, 6] tensor.
        let base = random(&[9, 6], dtype).t().unwrap();
        // Narrowed source: columns 2..11 of a [6, 13] tensor.
        let source = random(&[6, 13], dtype).narrow(1, 2, 9).unwrap();
        assert!(!base.is_contiguous() && !source.is_contiguous());
        for op in OPS {
            let dims = random_dims(9, &mut rng);
            let fused = masked_combine(&base, &source, &dims, op).unwrap();
            let reference = masked_combine_reference(&base, &source, &dims, op).unwrap();
            let plain = masked_combine(
                &base.contiguous().unwrap(),
                &source.contiguous().unwrap(),
                &dims,
                op,
            )
            .unwrap();
            assert_eq!(
                values(&fused),
                values(&reference),
                "{dtype:?} {op:?} {dims:?}"
            );
            assert_eq!(values(&fused), values(&plain));
        }
    }
    // A base narrowed along dim 0 is contiguous with an offset.
    let full = random(&[5, 4], DType::F32);
    let base = full.narrow(0, 2, 3).unwrap();
    let source = random(&[3, 4], DType::F32);
    let fused = masked_combine(&base, &source, &[1, 2], Combine::Replace).unwrap();
    let reference = masked_combine_reference(&base, &source, &[1, 2], Combine::Replace).unwrap();
    assert_eq!(values(&fused), values(&reference));
}

#[test]
fn per_row_and_per_example_selections() {
    let mut rng = StdRng::seed_from_u64(11);
    for dtype in DTYPES {
        for op in OPS {
            let (b, p, w) = (3, 4, 33);
            let base = random(&[b, p, w], dtype);
            let source = random(&[b, p, w], dtype);
            let per_row: Vec<Vec<usize>> = (0..b * p).map(|_| random_dims(w, &mut rng)).collect();
            let fused = masked_combine_rows(&base, &source, &per_row, op).unwrap();
            let reference = masked_combine_rows_reference(&base, &source, &per_row, op).unwrap();
            assert_eq!(values(&fused), values(&reference), "{dtype:?} {op:?}");

            let per_example: Vec<Vec<usize>> = (0..b).map(|_| random_dims(w, &mut rng)).collect();
            let fused = masked_combine_rows(&base, &source, &per_example, op).unwrap();
            // Same as expanding each example's list to its rows.
            let expanded: Vec<Vec<usize>> =
                (0..b * p).map(|r| per_example[r / p].clone()).collect();
            let reference = masked_combine_rows_reference(&base, &source, &expanded, op).unwrap();
            assert_eq!(values(&fused), values(&reference));
        }
    }
}

#[test]
fn broadcast_source_row() {
    let base = Tensor::zeros((2, 2, 3), DType::F32, &Device::Cpu).unwrap();
    let steer = Tensor::new(&[[1f32, 2., 3.]], &Device::Cpu).unwrap(); // [1, 3]
    let out = masked_combine(&base, &steer, &[2], Combine::Add).unwrap();
    assert_eq!(
        out.to_vec3::<f32>().unwrap(),
        [[[0., 0., 3.], [0., 0., 3.]], [[0., 0., 3.], [0., 0., 3.]]]
    );
}
