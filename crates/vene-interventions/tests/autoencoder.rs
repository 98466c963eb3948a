//! AutoencoderIntervention: selective path == plain path, error-preserving mode, custom
//! autoencoders, bad input.

use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use vene_autoencoder::{Autoencoder, AutoencoderLayer};
use vene_interventions::{
    AutoencoderIntervention, AutoencoderMode, Intervention, InterventionError, Selection,
};
use vene_testutil::max_abs_diff;

fn dev() -> Device {
    Device::Cpu
}

fn inputs(n: usize, d: usize) -> (Tensor, Tensor) {
    (
        Tensor::randn(0f32, 1., (3, n, d), &dev()).unwrap(),
        Tensor::randn(0f32, 1., (3, n, d), &dev()).unwrap(),
    )
}

/// Plain encode-swap-decode written out independently of the intervention.
fn reference(ae: &AutoencoderLayer, base: &Tensor, source: &Tensor, dims: &[usize]) -> Tensor {
    let zb = ae.encode(base).unwrap().to_vec3::<f32>().unwrap();
    let zs = ae.encode(source).unwrap().to_vec3::<f32>().unwrap();
    let mut z = zb.clone();
    for (b, rows) in z.iter_mut().enumerate() {
        for (u, row) in rows.iter_mut().enumerate() {
            for &d in dims {
                row[d] = zs[b][u][d];
            }
        }
    }
    ae.decode(&Tensor::new(z, &dev()).unwrap()).unwrap()
}

#[test]
fn selective_equals_plain_and_reference() {
    let ae = AutoencoderLayer::new(16, 64, DType::F32, &dev()).unwrap();
    let (base, source) = inputs(2, 16);
    for dims in [
        vec![],
        vec![5],
        vec![0, 63, 17],
        (0..64).step_by(3).collect::<Vec<_>>(),
    ] {
        let iv = AutoencoderIntervention::from_layer(ae.clone())
            .unwrap()
            .with_interchange_dim(dims.clone())
            .unwrap();
        let want = reference(&ae, &base, &source, &dims);
        for mode in [
            AutoencoderMode::Reconstruction,
            AutoencoderMode::ErrorPreserving,
        ] {
            let fast = iv.clone().with_mode(mode);
            let slow = fast.clone().with_selective(false);
            let a = fast
                .forward(&base, Some(&source), &Selection::Default)
                .unwrap();
            let b = slow
                .forward(&base, Some(&source), &Selection::Default)
                .unwrap();
            assert!(max_abs_diff(&a, &b) < 1e-5, "{dims:?} {mode:?}");
            let expect = match mode {
                AutoencoderMode::Reconstruction => want.clone(),
                AutoencoderMode::ErrorPreserving => {
                    let (recon, _) = ae.forward(&base, false).unwrap();
                    ((&base + &want).unwrap() - recon).unwrap()
                }
            };
            assert!(max_abs_diff(&a, &expect) < 1e-5, "{dims:?} {mode:?}");
        }
    }
}

#[test]
fn per_example_selection_uses_each_examples_dims() {
    let ae = AutoencoderLayer::new(8, 24, DType::F32, &dev()).unwrap();
    let (base, source) = inputs(2, 8);
    let iv = AutoencoderIntervention::from_layer(ae.clone()).unwrap();
    let rows = vec![vec![1, 2], vec![], vec![23]];
    let out = iv
        .forward(&base, Some(&source), &Selection::PerExample(rows.clone()))
        .unwrap();
    for (b, dims) in rows.iter().enumerate() {
        let bb = base.narrow(0, b, 1).unwrap();
        let sb = source.narrow(0, b, 1).unwrap();
        let want = reference(&ae, &bb, &sb, dims);
        assert!(
            max_abs_diff(&out.narrow(0, b, 1).unwrap(), &want) < 1e-5,
            "example {b}"
        );
    }
}

#[test]
fn error_preserving_without_dims_is_exactly_base() {
    let ae = AutoencoderLayer::new(8, 32, DType::F32, &dev()).unwrap();
    let (base, source) = inputs(3, 8);
    let iv = AutoencoderIntervention::from_layer(ae.clone())
        .unwrap()
        .with_error_preserving(true);
    for sel in [Selection::Default, Selection::Dims(vec![])] {
        let out = iv.forward(&base, Some(&source), &sel).unwrap();
        assert_eq!(
            out.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            base.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
    // Reconstruction mode without dims: decode(encode(base)), not base.
    let recon_iv = AutoencoderIntervention::from_layer(ae.clone()).unwrap();
    let out = recon_iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    let (recon, _) = ae.forward(&base, false).unwrap();
    assert!(max_abs_diff(&out, &recon) < 1e-6);
    assert!(max_abs_diff(&out, &base) > 1e-3);
}

/// A user-defined autoencoder (no decoder_rows): the plain path runs.
#[derive(Debug)]
struct Doubling;

impl Autoencoder for Doubling {
    fn input_dim(&self) -> usize {
        2
    }
    fn latent_dim(&self) -> usize {
        4
    }
    // z = (x0, x1, 2 x0, 2 x1)
    fn encode(&self, x: &Tensor) -> vene_autoencoder::Result<Tensor> {
        Ok(Tensor::cat(&[x, &(x * 2.0)?], candle_core::D::Minus1)?)
    }
    // x = (z0 + z2) / 2, (z1 + z3) / 2 ... but non-affine on purpose: relu first.
    fn decode(&self, z: &Tensor) -> vene_autoencoder::Result<Tensor> {
        let z = z.relu()?;
        let a = z.narrow(candle_core::D::Minus1, 0, 2)?;
        let b = z.narrow(candle_core::D::Minus1, 2, 2)?;
        Ok(((a + b)? / 2.0)?)
    }
}

#[test]
fn custom_autoencoder_plugs_in() {
    let iv = AutoencoderIntervention::new(Arc::new(Doubling))
        .unwrap()
        .with_interchange_dim(vec![2, 3])
        .unwrap();
    let base = Tensor::new(&[[[1f32, 3.]]], &dev()).unwrap();
    let source = Tensor::new(&[[[5f32, -7.]]], &dev()).unwrap();
    // zb = (1, 3, 2, 6) -> (1, 3, 10, -14) -> relu (1, 3, 10, 0) -> ((1+10)/2, (3+0)/2).
    let out = iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    assert_eq!(
        out.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        vec![5.5, 1.5]
    );
    assert!(iv.vars().is_empty());
    assert!(matches!(
        iv.state_dict(),
        Err(InterventionError::Unsupported(_))
    ));
}

#[test]
fn bad_input_is_a_typed_error() {
    let ae = AutoencoderLayer::new(8, 32, DType::F32, &dev()).unwrap();
    let mut iv = AutoencoderIntervention::from_layer(ae).unwrap();
    let e = iv.set_interchange_dim(vec![3, 32]).unwrap_err();
    assert!(
        matches!(
            e,
            InterventionError::DimOutOfRange {
                index: 32,
                width: 32,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("latent"));
    let (base, source) = inputs(1, 8);
    let e = iv
        .forward(&base, Some(&source), &Selection::Dims(vec![40]))
        .unwrap_err();
    assert!(
        matches!(e, InterventionError::DimOutOfRange { index: 40, .. }),
        "{e}"
    );
    let wide = Tensor::zeros((3, 1, 9), DType::F32, &dev()).unwrap();
    let e = iv
        .forward(&wide, Some(&wide), &Selection::Default)
        .unwrap_err();
    assert!(
        matches!(e, InterventionError::WidthMismatch { expected: 8, .. }),
        "{e}"
    );
    let other = source.narrow(0, 0, 2).unwrap();
    let e = iv
        .forward(&base, Some(&other), &Selection::Default)
        .unwrap_err();
    assert!(
        matches!(e, InterventionError::Unbroadcastable { .. }),
        "{e}"
    );
    let e = iv.forward(&base, None, &Selection::Default).unwrap_err();
    assert!(matches!(e, InterventionError::MissingSource { .. }), "{e}");
    // A constant source [d] broadcasts.
    let constant = Tensor::ones(8, DType::F32, &dev()).unwrap();
    iv.set_interchange_dim(vec![1, 2]).unwrap();
    let out = iv
        .forward(&base, Some(&constant), &Selection::Default)
        .unwrap();
    let full = iv
        .forward(
            &base,
            Some(&constant.broadcast_as((3, 1, 8)).unwrap()),
            &Selection::Default,
        )
        .unwrap();
    assert!(max_abs_diff(&out, &full) < 1e-6);
}

#[test]
fn output_in_base_dtype_and_trainable() {
    let ae = AutoencoderLayer::new(8, 16, DType::F32, &dev()).unwrap();
    let iv = AutoencoderIntervention::from_layer(ae)
        .unwrap()
        .with_interchange_dim(vec![0])
        .unwrap();
    assert_eq!(iv.vars().len(), 4);
    let (base, source) = inputs(1, 8);
    let out = iv
        .forward(
            &base.to_dtype(DType::F16).unwrap(),
            Some(&source),
            &Selection::Default,
        )
        .unwrap();
    assert_eq!(out.dtype(), DType::F16);
    let f32_out = iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    assert!(max_abs_diff(&out.to_dtype(DType::F32).unwrap(), &f32_out) < 1e-2);
}

/// Every `set_interchange_dim` takes the same arguments: a list of dims (Vec, array, slice), a
/// range, or `InterchangeDim::First(k)`; a failed call changes nothing.
#[test]
fn set_interchange_dim_takes_the_same_arguments_everywhere() {
    use vene_autoencoder::JumpReLUAutoencoder;
    use vene_interventions::{
        InterchangeDim, JumpReLUAutoencoderIntervention, VanillaIntervention,
    };

    let ae = AutoencoderLayer::new(4, 6, DType::F32, &dev()).unwrap();
    let mut iv = AutoencoderIntervention::from_layer(ae).unwrap();
    iv.set_interchange_dim([4, 1]).unwrap();
    assert_eq!(iv.interchange_dim(), &[4, 1]);
    iv.set_interchange_dim(InterchangeDim::First(3)).unwrap();
    assert_eq!(iv.interchange_dim(), &[0, 1, 2]);
    iv.set_interchange_dim(2..4).unwrap();
    assert_eq!(iv.interchange_dim(), &[2, 3]);
    assert!(iv.set_interchange_dim(InterchangeDim::First(7)).is_err());
    assert!(iv.set_interchange_dim(&[1usize, 6][..]).is_err());
    assert_eq!(
        iv.interchange_dim(),
        &[2, 3],
        "a failed call changed the dims"
    );

    let z = |dims: &[usize]| Tensor::zeros(dims, DType::F32, &dev()).unwrap();
    let sae = JumpReLUAutoencoder::from_tensors(z(&[4, 6]), z(&[6]), z(&[6, 4]), z(&[4]), z(&[6]))
        .unwrap();
    let jump = JumpReLUAutoencoderIntervention::from_autoencoder(sae)
        .unwrap()
        .with_interchange_dim(vec![5, 0])
        .unwrap();
    assert_eq!(jump.interchange_dim(), &InterchangeDim::Dims(vec![5, 0]));
    let mut jump = jump;
    assert!(jump.set_interchange_dim([6]).is_err());
    assert_eq!(jump.interchange_dim(), &InterchangeDim::Dims(vec![5, 0]));

    let mut vanilla = VanillaIntervention::new(4);
    vanilla.set_interchange_dim(vec![3]).unwrap();
    assert_eq!(vanilla.interchange_dim(), &InterchangeDim::Dims(vec![3]));
    vanilla.set_interchange_dim(0..2).unwrap();
    assert_eq!(vanilla.interchange_dim(), &InterchangeDim::First(2));
}
