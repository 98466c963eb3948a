//! Moving autoencoder interventions: the SAE moves with them (never left behind), and mixed
//! precision (a bf16 / f16 base with an f32 SAE, or the reverse) computes the autoencoder
//! math in the SAE's dtype.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use vene_autoencoder::{Autoencoder, JumpReLUAutoencoder, ReluAutoencoder};
use vene_interventions::{
    AutoencoderIntervention, Intervention, InterventionError, JumpReLUAutoencoderIntervention,
    Selection,
};
use vene_testutil::{device, max_abs_diff};

const D: usize = 8;
const L: usize = 24;

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 1., shape, &device()).unwrap()
}

fn relu_sae() -> ReluAutoencoder {
    ReluAutoencoder::from_tensors(
        (randn(&[D, L]) * 0.5).unwrap(),
        randn(&[L]),
        (randn(&[L, D]) * 0.5).unwrap(),
        randn(&[D]),
    )
    .unwrap()
}

/// The dtypes of every autoencoder tensor in a state dict.
fn autoencoder_dtypes(iv: &dyn Intervention) -> Vec<DType> {
    let state = iv.state_dict().unwrap();
    let dtypes: Vec<DType> = state
        .iter()
        .filter(|(n, _)| n.starts_with("autoencoder.") || n.starts_with('W') || n.starts_with("b_"))
        .map(|(_, t)| t.dtype())
        .collect();
    assert!(dtypes.len() >= 4, "the state dict holds the autoencoder");
    dtypes
}

#[test]
fn a_loaded_sae_moves_with_its_intervention() {
    let iv = AutoencoderIntervention::new(Arc::new(relu_sae()))
        .unwrap()
        .with_interchange_dim(vec![1, 5])
        .unwrap();
    let cast = iv.to_dtype(DType::F64).unwrap();
    assert!(autoencoder_dtypes(cast.as_ref())
        .iter()
        .all(|&d| d == DType::F64));
    let moved = iv.to_device(&device()).unwrap();
    assert!(autoencoder_dtypes(moved.as_ref())
        .iter()
        .all(|&d| d == DType::F32));
    let both = iv
        .to_device_dtype(&device(), DType::BF16, DType::F16)
        .unwrap();
    assert!(autoencoder_dtypes(both.as_ref())
        .iter()
        .all(|&d| d == DType::F16));
    // Dims, mode and path survive the move.
    assert_eq!(
        both.hyperparams()["interchange_dim"],
        iv.hyperparams()["interchange_dim"]
    );
    let typed = iv.to(&device(), DType::F64).unwrap();
    assert_eq!(typed.interchange_dim(), &[1, 5]);
    assert_eq!(typed.autoencoder_dtype(), Some(DType::F64));
    for (name, t) in typed.state_dict().unwrap() {
        if name.starts_with("autoencoder.") {
            assert!(t.device().same_device(&device()), "{name}");
        }
    }
}

#[test]
fn jumprelu_intervention_moves_its_sae_to_the_autoencoder_dtype() {
    let thr = (randn(&[L]).abs().unwrap() * 0.1).unwrap();
    let sae = JumpReLUAutoencoder::from_tensors(
        randn(&[D, L]),
        randn(&[L]),
        randn(&[L, D]),
        randn(&[D]),
        thr,
    )
    .unwrap();
    let iv = JumpReLUAutoencoderIntervention::from_autoencoder(sae).unwrap();
    let moved = iv
        .to_device_dtype(&device(), DType::BF16, DType::F64)
        .unwrap();
    let state = moved.state_dict().unwrap();
    for name in ["W_enc", "W_dec", "threshold", "b_enc", "b_dec"] {
        let t = &state.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(t.dtype(), DType::F64, "{name}");
    }
}

/// The reconstruction an AutoencoderIntervention outputs with nothing selected is
/// `decode(encode(base))` computed in the autoencoder's dtype, cast back to the base's.
fn reconstruction(iv: &AutoencoderIntervention, base: &Tensor) -> Tensor {
    let source = base.zeros_like().unwrap();
    iv.forward(base, Some(&source), &Selection::Dims(vec![]))
        .unwrap()
}

#[test]
fn mixed_precision_both_ways() {
    let sae = relu_sae();
    let base = randn(&[2, 3, D]);
    let f32_iv = AutoencoderIntervention::new(Arc::new(sae.clone())).unwrap();
    let f32_out = reconstruction(&f32_iv, &base);
    for half in [DType::BF16, DType::F16] {
        // A half-precision model with an f32 SAE: output in the model's dtype, the math in
        // f32, so it is the f32 reconstruction of the (half) input, rounded once.
        let half_base = base.to_dtype(half).unwrap();
        let out = reconstruction(&f32_iv, &half_base);
        assert_eq!(out.dtype(), half);
        let want = sae
            .forward(&half_base.to_dtype(DType::F32).unwrap(), false)
            .unwrap()
            .0
            .to_dtype(half)
            .unwrap();
        assert_eq!(max_abs_diff(&out, &want), 0.0, "{half:?} base, f32 SAE");

        // The reverse: an f32 model with a half-precision SAE: output f32, the math in
        // `half` (so it differs from the f32 math, by about half's rounding).
        let half_iv = f32_iv.to(&device(), half).unwrap();
        assert_eq!(half_iv.autoencoder_dtype(), Some(half));
        let out = reconstruction(&half_iv, &base);
        assert_eq!(out.dtype(), DType::F32);
        let half_sae = sae.to(&device(), half).unwrap();
        let want = half_sae
            .forward(&base.to_dtype(half).unwrap(), false)
            .unwrap()
            .0
            .to_dtype(DType::F32)
            .unwrap();
        assert_eq!(max_abs_diff(&out, &want), 0.0, "f32 base, {half:?} SAE");
        let d = max_abs_diff(&out, &f32_out);
        assert!(d > 0.0 && d < 0.2, "{half:?} SAE vs f32 SAE: {d}");
    }
}

#[derive(Debug)]
struct Weightless;

impl Autoencoder for Weightless {
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
fn a_custom_autoencoder_that_cannot_move_is_an_error_not_left_behind() {
    let iv = AutoencoderIntervention::new(Arc::new(Weightless)).unwrap();
    let err = iv.to_device(&Device::Cpu).unwrap_err();
    assert!(matches!(err, InterventionError::Unsupported(_)), "{err}");
    let err = iv
        .to_device_dtype(&Device::Cpu, DType::F32, DType::F16)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Autoencoder::to"), "{err}");
}
