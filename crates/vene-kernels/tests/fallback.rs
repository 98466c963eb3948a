//! The fallback path (the candle composition, used where a device has no fused kernel),
//! forced on the CPU, against the fused kernel: every op, bit for bit, with the same
//! gradients and the same errors.

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use vene_kernels::{
    kernel_path, masked_combine, masked_combine_inplace, masked_combine_rows, with_kernel_mode,
    Combine, KernelError, KernelMode, KernelPath,
};

const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];
const OPS: [Combine; 3] = [Combine::Replace, Combine::Add, Combine::Subtract];

/// The exact bits of every element (as f64, which holds every f16/bf16/f32 value exactly).
fn bits(t: &Tensor) -> Vec<u64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
        .into_iter()
        .map(f64::to_bits)
        .collect()
}

fn random(shape: &[usize], dtype: DType) -> Tensor {
    Tensor::randn(0f32, 1., shape, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn random_dims(width: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut all: Vec<usize> = (0..width).collect();
    all.shuffle(rng);
    all.truncate(rng.random_range(0..=width));
    all
}

/// Runs `f` with the fused kernel and with the fallback forced, checking which ran.
fn both<R>(f: impl Fn() -> R) -> (R, R) {
    let fused = with_kernel_mode(KernelMode::Auto, || {
        assert_eq!(kernel_path(&Device::Cpu), KernelPath::Fused);
        f()
    });
    let fallback = with_kernel_mode(KernelMode::Fallback, || {
        assert_eq!(kernel_path(&Device::Cpu), KernelPath::Fallback);
        f()
    });
    (fused, fallback)
}

#[test]
fn out_of_place_and_in_place_agree_bit_for_bit() {
    let mut rng = StdRng::seed_from_u64(3);
    for case in 0..96 {
        let width = rng.random_range(1..40);
        let shape: Vec<usize> = match case % 3 {
            0 => vec![width],
            1 => vec![rng.random_range(0..5), width],
            _ => vec![rng.random_range(1..4), rng.random_range(1..5), width],
        };
        let dtype = DTYPES[case % 4];
        let op = OPS[(case / 4) % 3];
        let base = random(&shape, dtype);
        let source = match case % 5 {
            0 => random(&[width], dtype),
            1 => random(&[1, 1, width], dtype),
            _ => random(&shape, dtype),
        };
        let dims = random_dims(width, &mut rng);
        let what = format!("case {case}: {shape:?} {dtype:?} {op:?} {dims:?}");
        let (a, b) = both(|| masked_combine(&base, &source, &dims, op).unwrap());
        assert_eq!(bits(&a), bits(&b), "{what}");
        assert_eq!((a.dtype(), a.shape()), (b.dtype(), b.shape()), "{what}");
        let (a, b) = both(|| {
            let owned = base.copy().unwrap();
            masked_combine_inplace(&owned, &source, &dims, op).unwrap();
            owned
        });
        assert_eq!(bits(&a), bits(&b), "in place, {what}");
    }
}

#[test]
fn per_row_strided_and_hand_derived() {
    let mut rng = StdRng::seed_from_u64(5);
    for dtype in DTYPES {
        for op in OPS {
            let (b, p, w) = (3, 4, 17);
            let base = random(&[b, p, w], dtype);
            let source = random(&[b, p, w], dtype);
            for lists in [b * p, b] {
                let dims: Vec<Vec<usize>> = (0..lists).map(|_| random_dims(w, &mut rng)).collect();
                let (x, y) = both(|| masked_combine_rows(&base, &source, &dims, op).unwrap());
                assert_eq!(bits(&x), bits(&y), "{dtype:?} {op:?} {lists} lists");
            }
            let base_t = random(&[w, 6], dtype).t().unwrap();
            let source_n = random(&[6, w + 4], dtype).narrow(1, 2, w).unwrap();
            let dims = random_dims(w, &mut rng);
            let (x, y) = both(|| masked_combine(&base_t, &source_n, &dims, op).unwrap());
            assert_eq!(bits(&x), bits(&y), "strided {dtype:?} {op:?}");
        }
    }
    // Hand-derived, fallback forced: columns 3 and 0 combined, the rest kept.
    let base = Tensor::new(&[[1f32, 2., 3., 4.], [5., 6., 7., 8.]], &Device::Cpu).unwrap();
    let source = Tensor::new(&[10f32, 20., 30., 40.], &Device::Cpu).unwrap();
    with_kernel_mode(KernelMode::Fallback, || {
        let add = masked_combine(&base, &source, &[3, 0], Combine::Add).unwrap();
        assert_eq!(
            add.to_vec2::<f32>().unwrap(),
            [[11., 2., 3., 44.], [15., 6., 7., 48.]]
        );
        let owned = base.copy().unwrap();
        masked_combine_inplace(&owned, &source, &[1, 2, 0], Combine::Subtract).unwrap();
        assert_eq!(
            owned.to_vec2::<f32>().unwrap(),
            [[-9., -18., -27., 4.], [-5., -14., -23., 8.]]
        );
    });
}

#[test]
fn gradients_agree() {
    let dev = Device::Cpu;
    for op in OPS {
        for src_shape in [&[2usize, 4][..], &[4][..]] {
            let (fused, fallback) = both(|| {
                let base = Var::from_tensor(
                    &Tensor::arange(0f32, 8., &dev)
                        .unwrap()
                        .reshape((2, 4))
                        .unwrap(),
                )
                .unwrap();
                let source = Var::ones(src_shape, DType::F32, &dev).unwrap();
                let w = Tensor::arange(1f32, 9., &dev)
                    .unwrap()
                    .reshape((2, 4))
                    .unwrap();
                let out =
                    masked_combine(base.as_tensor(), source.as_tensor(), &[3, 1], op).unwrap();
                let g = (out * w).unwrap().sum_all().unwrap().backward().unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                (
                    flat(g.get(base.as_tensor()).unwrap()),
                    flat(g.get(source.as_tensor()).unwrap()),
                )
            });
            assert_eq!(fused, fallback, "{op:?} source {src_shape:?}");
        }
    }
}

#[test]
fn errors_are_the_same() {
    let z = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    let (a, b) = both(|| masked_combine(&z(&[2, 4]), &z(&[2, 4]), &[4], Combine::Add));
    assert!(matches!(
        (a.unwrap_err(), b.unwrap_err()),
        (
            KernelError::IndexOutOfRange { index: 4, width: 4 },
            KernelError::IndexOutOfRange { index: 4, width: 4 }
        )
    ));
    let (a, b) = both(|| masked_combine(&z(&[2, 4]), &z(&[3, 4]), &[0], Combine::Add));
    assert!(matches!(a.unwrap_err(), KernelError::ShapeMismatch { .. }));
    assert!(matches!(b.unwrap_err(), KernelError::ShapeMismatch { .. }));
    let (a, b) = both(|| {
        let base = z(&[2, 4]);
        masked_combine_inplace(&base, &base, &[0], Combine::Replace)
    });
    assert!(matches!(a.unwrap_err(), KernelError::Candle(_)));
    assert!(matches!(b.unwrap_err(), KernelError::Candle(_)));
    let (a, b) = both(|| {
        masked_combine_inplace(
            &z(&[4, 2]).t().unwrap(),
            &z(&[2, 4]),
            &[0],
            Combine::Replace,
        )
    });
    assert!(matches!(a.unwrap_err(), KernelError::NotContiguous));
    assert!(matches!(b.unwrap_err(), KernelError::NotContiguous));
}
