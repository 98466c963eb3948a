//! The CUDA kernels against the CPU op, exactly (it is a copy / one add per element).
//! Runs only with `--features cuda` on a machine with a GPU (scripts/gpu-check.sh).
#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use vene_kernels::{
    kernel_path, masked_combine, masked_combine_inplace, masked_combine_rows, with_kernel_mode,
    Combine, KernelMode, KernelPath,
};

const DTYPES: [DType; 4] = [DType::F32, DType::F64, DType::F16, DType::BF16];
const OPS: [Combine; 3] = [Combine::Replace, Combine::Add, Combine::Subtract];

fn gpu() -> Device {
    Device::new_cuda(0).expect("a CUDA device (this test needs a GPU)")
}

fn bits(t: &Tensor) -> Vec<f64> {
    t.to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

fn dims(width: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut all: Vec<usize> = (0..width).collect();
    match rng.random_range(0..5) {
        0 => vec![],
        1 => vec![rng.random_range(0..width)],
        2 => all,
        _ => {
            all.shuffle(rng);
            all.truncate(rng.random_range(0..=width));
            all
        }
    }
}

#[test]
fn cuda_equals_cpu_on_random_inputs() {
    let dev = gpu();
    let mut rng = StdRng::seed_from_u64(3);
    // Odd sizes, vector-friendly sizes, a broadcast source, offsets; sparse and dense paths.
    let shapes: [&[usize]; 8] = [
        &[1, 1],
        &[3, 7],
        &[5, 33],
        &[2, 3, 64],
        &[17, 1000],
        &[64, 4096],
        &[1, 65537],
        &[300, 129],
    ];
    for (case, shape) in shapes.iter().cycle().take(96).enumerate() {
        let dtype = DTYPES[case % 4];
        let op = OPS[(case / 4) % 3];
        let width = *shape.last().unwrap();
        let base_cpu = Tensor::randn(0f32, 1., *shape, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let source_cpu = if case % 5 == 0 {
            Tensor::randn(0f32, 1., width, &Device::Cpu).unwrap()
        } else {
            Tensor::randn(0f32, 1., *shape, &Device::Cpu).unwrap()
        }
        .to_dtype(dtype)
        .unwrap();
        let sel = dims(width, &mut rng);
        let want = masked_combine(&base_cpu, &source_cpu, &sel, op).unwrap();
        let base = base_cpu.to_device(&dev).unwrap();
        let source = source_cpu.to_device(&dev).unwrap();
        let got = masked_combine(&base, &source, &sel, op).unwrap();
        assert_eq!(
            bits(&got),
            bits(&want),
            "case {case} {shape:?} {dtype:?} {op:?}"
        );

        masked_combine_inplace(&base, &source, &sel, op).unwrap();
        assert_eq!(bits(&base), bits(&want), "in place, case {case}");
    }
}

#[test]
fn cuda_per_row_strided_and_offset_inputs() {
    let dev = gpu();
    let mut rng = StdRng::seed_from_u64(9);
    for dtype in DTYPES {
        for op in OPS {
            let (b, p, w) = (4, 5, 96);
            let base_cpu = Tensor::randn(0f32, 1., (b, p, w), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let source_cpu = Tensor::randn(0f32, 1., (b, p, w), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let lists: Vec<Vec<usize>> = (0..b * p).map(|_| dims(w, &mut rng)).collect();
            let want = masked_combine_rows(&base_cpu, &source_cpu, &lists, op).unwrap();
            let base = base_cpu.to_device(&dev).unwrap();
            let source = source_cpu.to_device(&dev).unwrap();
            let got = masked_combine_rows(&base, &source, &lists, op).unwrap();
            assert_eq!(bits(&got), bits(&want), "per row {dtype:?} {op:?}");

            // Transposed and narrowed (offset) inputs.
            let t_cpu = base_cpu.reshape((b * p, w)).unwrap().t().unwrap();
            let s_cpu = source_cpu
                .reshape((b * p, w))
                .unwrap()
                .narrow(0, 1, w.min(b * p - 1))
                .unwrap();
            let t = t_cpu.to_device(&dev).unwrap();
            let sel = dims(b * p, &mut rng);
            let src_row = s_cpu.narrow(0, 0, 1).unwrap().narrow(1, 0, b * p).unwrap();
            let want = masked_combine(&t_cpu, &src_row, &sel, op).unwrap();
            let got = masked_combine(&t, &src_row.to_device(&dev).unwrap(), &sel, op).unwrap();
            assert_eq!(bits(&got), bits(&want), "strided {dtype:?} {op:?}");
            let off_cpu = base_cpu
                .reshape((b * p, w))
                .unwrap()
                .narrow(0, 3, 7)
                .unwrap();
            let off = base.reshape((b * p, w)).unwrap().narrow(0, 3, 7).unwrap();
            let src7 = source_cpu
                .reshape((b * p, w))
                .unwrap()
                .narrow(0, 0, 7)
                .unwrap();
            let sel = dims(w, &mut rng);
            let want = masked_combine(&off_cpu, &src7, &sel, op).unwrap();
            let got = masked_combine(&off, &src7.to_device(&dev).unwrap(), &sel, op).unwrap();
            assert_eq!(bits(&got), bits(&want), "offset {dtype:?} {op:?}");
        }
    }
}

#[test]
fn cuda_fused_equals_cuda_fallback() {
    let dev = gpu();
    let mut rng = StdRng::seed_from_u64(21);
    for (case, shape) in [&[3usize, 7][..], &[2, 5, 96], &[64, 4096], &[1, 65537]]
        .iter()
        .cycle()
        .take(24)
        .enumerate()
    {
        let (dtype, op) = (DTYPES[case % 4], OPS[(case / 4) % 3]);
        let width = *shape.last().unwrap();
        let base = Tensor::randn(0f32, 1., *shape, &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let source = Tensor::randn(0f32, 1., *shape, &dev)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        let sel = dims(width, &mut rng);
        let fused = with_kernel_mode(KernelMode::Auto, || {
            assert_eq!(kernel_path(&dev), KernelPath::Fused);
            masked_combine(&base, &source, &sel, op).unwrap()
        });
        let fallback = with_kernel_mode(KernelMode::Fallback, || {
            assert_eq!(kernel_path(&dev), KernelPath::Fallback);
            let out = masked_combine(&base, &source, &sel, op).unwrap();
            let owned = base.copy().unwrap();
            masked_combine_inplace(&owned, &source, &sel, op).unwrap();
            assert_eq!(bits(&owned), bits(&out), "fallback in place, case {case}");
            out
        });
        assert_eq!(
            bits(&fused),
            bits(&fallback),
            "case {case} {shape:?} {dtype:?} {op:?}"
        );
    }
}
