//! `Autoencoder::to`: every built-in kind moves to a device and dtype, computes in it, and
//! answers inputs of any dtype in their own dtype; overflowing casts and custom
//! autoencoders without `to` are clear errors.

use candle_core::{DType, Device, Tensor};
use vene_autoencoder::{
    Autoencoder, AutoencoderError, AutoencoderLayer, JumpReLUAutoencoder, ReluAutoencoder,
    TopKAutoencoder,
};
use vene_testutil::max_abs_diff;

const D: usize = 6;
const L: usize = 10;

fn randn(shape: &[usize], seed: u64) -> Tensor {
    // A deterministic pseudo-random pattern (no RNG state shared between tests).
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (((i as u64 * 2654435761 + seed * 97) % 1000) as f32 / 500.0) - 1.0)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn kinds() -> Vec<(&'static str, Box<dyn Autoencoder>)> {
    let (we, be, wd, bd) = (
        randn(&[D, L], 1),
        randn(&[L], 2),
        randn(&[L, D], 3),
        randn(&[D], 4),
    );
    let thr = (randn(&[L], 5).abs().unwrap() * 0.1).unwrap();
    vec![
        (
            "layer",
            Box::new(AutoencoderLayer::new(D, L, DType::F32, &Device::Cpu).unwrap()),
        ),
        (
            "relu",
            Box::new(
                ReluAutoencoder::from_tensors(we.clone(), be.clone(), wd.clone(), bd.clone())
                    .unwrap(),
            ),
        ),
        (
            "topk",
            Box::new(
                TopKAutoencoder::from_tensors(we.clone(), be.clone(), wd.clone(), bd.clone(), 3)
                    .unwrap(),
            ),
        ),
        (
            "jumprelu",
            Box::new(JumpReLUAutoencoder::from_tensors(we, be, wd, bd, thr).unwrap()),
        ),
    ]
}

#[test]
fn every_kind_moves_and_computes_in_the_new_dtype() {
    let x = randn(&[4, D], 9);
    for (name, ae) in kinds() {
        assert_eq!(ae.placement().map(|p| p.1), Some(DType::F32), "{name}");
        let (want, want_z) = ae.forward(&x, true).unwrap();
        for (dtype, tol) in [(DType::F64, 1e-5), (DType::BF16, 0.1), (DType::F16, 2e-2)] {
            let moved = ae.to(&Device::Cpu, dtype).unwrap();
            let (dev, dt) = moved.placement().unwrap();
            assert!(dev.is_cpu() && dt == dtype, "{name} {dtype:?}");
            // Every saved tensor is in the new dtype.
            let state = moved.state().unwrap().unwrap();
            for (t, v) in &state.tensors {
                assert_eq!(v.dtype(), dtype, "{name}: {t}");
            }
            // f32 in, f32 out, computed in `dtype`: close to the f32 result, within the
            // rounding of `dtype`.
            // (TopK and JumpReLU are discontinuous: in half precision a latent near its
            // threshold may flip, so only f64 is compared for them.)
            let (got, got_z) = moved.forward(&x, true).unwrap();
            assert_eq!(got.dtype(), DType::F32, "{name} {dtype:?}");
            let d = max_abs_diff(&got, &want);
            let continuous = matches!(name, "layer" | "relu");
            assert!(
                d <= tol || !(continuous || dtype == DType::F64),
                "{name} {dtype:?}: recon differs by {d}"
            );
            if dtype == DType::F64 {
                let dz = max_abs_diff(&got_z.unwrap(), want_z.as_ref().unwrap());
                assert!(dz <= tol, "{name}: latents differ by {dz}");
            }
            // And inputs in `dtype` are answered in `dtype` (the reverse mix).
            let y = moved.encode(&x.to_dtype(dtype).unwrap()).unwrap();
            assert_eq!(y.dtype(), dtype, "{name}");
        }
        // The original is untouched.
        assert_eq!(ae.placement().map(|p| p.1), Some(DType::F32), "{name}");
    }
}

#[test]
fn layer_moves_with_new_trainable_vars() {
    let ae = AutoencoderLayer::new(D, L, DType::F32, &Device::Cpu).unwrap();
    let moved = ae.to(&Device::Cpu, DType::F64).unwrap();
    assert_eq!(moved.dtype(), DType::F64);
    assert_eq!(moved.vars().len(), 4);
    for (a, b) in ae.vars().iter().zip(moved.vars()) {
        assert_eq!(b.dtype(), DType::F64);
        assert_eq!(max_abs_diff(a.as_tensor(), b.as_tensor()), 0.0);
    }
    // Training the copy leaves the original as it was.
    let before = ae.encoder_weight().to_vec2::<f32>().unwrap();
    let w = &moved.vars()[0];
    w.set(&w.as_tensor().ones_like().unwrap()).unwrap();
    assert_eq!(ae.encoder_weight().to_vec2::<f32>().unwrap(), before);
}

#[test]
fn overflowing_cast_and_non_float_dtype_are_errors() {
    let big = (randn(&[D, L], 1) * 1e6).unwrap();
    let sae = ReluAutoencoder::from_tensors(big, randn(&[L], 2), randn(&[L, D], 3), randn(&[D], 4))
        .unwrap();
    let err = sae.to(&Device::Cpu, DType::F16).unwrap_err();
    assert!(
        matches!(&err, AutoencoderError::NonFinite { tensor, .. } if tensor.contains("W_enc")),
        "{err}"
    );
    let err = sae.to(&Device::Cpu, DType::U32).unwrap_err();
    assert!(matches!(err, AutoencoderError::DTypeMismatch(_)), "{err}");
}

#[derive(Debug)]
struct Identity;

impl Autoencoder for Identity {
    fn input_dim(&self) -> usize {
        2
    }
    fn latent_dim(&self) -> usize {
        2
    }
    fn encode(&self, x: &Tensor) -> vene_autoencoder::Result<Tensor> {
        Ok(x.clone())
    }
    fn decode(&self, z: &Tensor) -> vene_autoencoder::Result<Tensor> {
        Ok(z.clone())
    }
}

#[test]
fn custom_autoencoder_without_to_says_so() {
    let err = Identity
        .to(&Device::Cpu, DType::F16)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Identity") && err.contains("Autoencoder::to"),
        "{err}"
    );
    assert!(Identity.placement().is_none());
}
