//! Vanilla, Addition, Subtraction, Zero, Collect, Skip and Noise with hand-derived numbers.

use candle_core::{DType, Device, Tensor};
use vene_interventions::{
    AdditionIntervention, CollectIntervention, InterchangeDim, Intervention, InterventionError,
    NoiseIntervention, Selection, SkipIntervention, SubtractionIntervention, VanillaIntervention,
    ZeroIntervention, DEFAULT_NOISE_LEVEL,
};

fn dev() -> Device {
    Device::Cpu
}

/// base[b][u][i] = 100 b + 10 u + i, source = -base.
fn base_source() -> (Tensor, Tensor) {
    let v: Vec<f32> = (0..2)
        .flat_map(|b| (0..2).flat_map(move |u| (0..4).map(move |i| (100 * b + 10 * u + i) as f32)))
        .collect();
    let base = Tensor::from_vec(v, (2, 2, 4), &dev()).unwrap();
    let source = base.neg().unwrap();
    (base, source)
}

fn v3(t: &Tensor) -> Vec<Vec<Vec<f32>>> {
    t.to_vec3::<f32>().unwrap()
}

#[test]
fn vanilla_default_first_k_and_explicit_dims() {
    let (base, source) = base_source();
    let iv = VanillaIntervention::new(4).with_interchange_dim(2);
    let out = v3(&iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap());
    assert_eq!(out[1][1], vec![-110., -111., 112., 113.]);
    let out = v3(&iv
        .forward(&base, Some(&source), &Selection::Dims(vec![3, 1]))
        .unwrap());
    assert_eq!(out[0][1], vec![10., -11., 12., -13.]);
    // pyvene's default interchange_dim = embed_dim: the whole source.
    let all = VanillaIntervention::new(4);
    let out = all
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    assert_eq!(v3(&out), v3(&source));
}

#[test]
fn per_example_selection() {
    let (base, source) = base_source();
    let iv = VanillaIntervention::new(4);
    let sel = Selection::PerExample(vec![vec![0], vec![2, 3]]);
    let out = v3(&iv.forward(&base, Some(&source), &sel).unwrap());
    assert_eq!(out[0][0], vec![0., 1., 2., 3.]); // -0 == 0
    assert_eq!(out[0][1], vec![-10., 11., 12., 13.]);
    assert_eq!(out[1][0], vec![100., 101., -102., -103.]);
    let bad = Selection::PerExample(vec![vec![0]]);
    assert!(matches!(
        iv.forward(&base, Some(&source), &bad),
        Err(InterventionError::SelectionBatch { got: 1, batch: 2 })
    ));
}

#[test]
fn addition_subtraction_with_constant_source() {
    let (base, _) = base_source();
    let steer = Tensor::new(&[1f32, 2., 3., 4.], &dev()).unwrap();
    let add = AdditionIntervention::new(4).with_source(&steer).unwrap();
    assert!(!add.needs_source());
    let out = v3(&add
        .forward(&base, None, &Selection::Dims(vec![0, 3]))
        .unwrap());
    assert_eq!(out[1][0], vec![101., 101., 102., 107.]);
    let sub = SubtractionIntervention::new(4).with_source(&steer).unwrap();
    let out = v3(&sub.forward(&base, None, &Selection::Default).unwrap());
    assert_eq!(out[0][1], vec![9., 9., 9., 9.]);
    // A constant given at call time broadcasts the same way.
    let plain = AdditionIntervention::new(4);
    assert!(plain.needs_source());
    let out = v3(&plain
        .forward(&base, Some(&steer), &Selection::Default)
        .unwrap());
    assert_eq!(out[1][1], vec![111., 113., 115., 117.]);
}

#[test]
fn zero_collect_skip() {
    let (base, source) = base_source();
    let zero = ZeroIntervention::new(4).with_interchange_dim(3);
    assert!(!zero.needs_source());
    let out = v3(&zero.forward(&base, None, &Selection::Default).unwrap());
    assert_eq!(out[1][1], vec![0., 0., 0., 113.]);

    let collect = CollectIntervention::new(4);
    assert!(collect.is_collect());
    let got = collect
        .forward(&base, None, &Selection::Dims(vec![2, 0]))
        .unwrap();
    assert_eq!(got.dims(), &[2, 2, 2]);
    assert_eq!(v3(&got)[1][0], vec![102., 100.]);
    let all = collect.forward(&base, None, &Selection::Default).unwrap();
    assert_eq!(v3(&all), v3(&base));

    let skip = SkipIntervention::new(4);
    assert!(skip.is_skip() && !skip.needs_source());
    let out = skip
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    assert_eq!(v3(&out), v3(&source));
    assert!(matches!(
        skip.forward(&base, None, &Selection::Default),
        Err(InterventionError::MissingSource { .. })
    ));
}

#[test]
fn noise_matches_numpy_stream() {
    // np.random.RandomState(1).randn(...) starts 1.62434536, -0.61175641, -0.52817175, ...
    let base = Tensor::zeros((1, 4, 3), DType::F32, &dev()).unwrap();
    let iv = NoiseIntervention::new(3).unwrap();
    assert!(!iv.needs_source());
    let out = v3(&iv.forward(&base, None, &Selection::Default).unwrap());
    let level = f64::from(DEFAULT_NOISE_LEVEL);
    let first = [1.62434536f64, -0.61175641, -0.52817175];
    for (i, f) in first.iter().enumerate() {
        assert!((f64::from(out[0][0][i]) - f * level).abs() < 1e-6);
    }
    // Unit 1 continues the stream: -1.07296862.
    assert!((f64::from(out[0][1][0]) + 1.07296862 * level).abs() < 1e-6);
    // Selected dims only.
    let out = v3(&iv.forward(&base, None, &Selection::Dims(vec![1])).unwrap());
    assert_eq!(out[0][0][0], 0.0);
    assert!(out[0][0][1] != 0.0);
    // More units than the buffer has rows.
    let big = Tensor::zeros((1, 5, 3), DType::F32, &dev()).unwrap();
    assert!(matches!(
        iv.forward(&big, None, &Selection::Default),
        Err(InterventionError::Shape { .. })
    ));
}

#[test]
fn bad_inputs_are_typed_errors() {
    let (base, source) = base_source();
    let iv = VanillaIntervention::new(4);
    // Dim out of range.
    let e = iv
        .forward(&base, Some(&source), &Selection::Dims(vec![4]))
        .unwrap_err();
    assert!(
        matches!(
            e,
            InterventionError::DimOutOfRange {
                index: 4,
                width: 4,
                ..
            }
        ),
        "{e}"
    );
    // Duplicate dims.
    let e = iv
        .forward(&base, Some(&source), &Selection::Dims(vec![1, 1]))
        .unwrap_err();
    assert!(
        matches!(e, InterventionError::DuplicateDim { index: 1, .. }),
        "{e}"
    );
    // Base width differs from embed_dim.
    let e = VanillaIntervention::new(5)
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap_err();
    assert!(
        matches!(e, InterventionError::WidthMismatch { expected: 5, .. }),
        "{e}"
    );
    // Base of the wrong rank.
    let flat = base.flatten_to(1).unwrap();
    let e = iv
        .forward(&flat, Some(&source), &Selection::Default)
        .unwrap_err();
    assert!(matches!(e, InterventionError::Shape { .. }), "{e}");
    // Source of another shape, and an unbroadcastable constant.
    let short = source
        .narrow(1, 0, 1)
        .unwrap()
        .narrow(0, 0, 1)
        .unwrap()
        .narrow(2, 0, 3)
        .unwrap();
    let e = iv
        .forward(&base, Some(&short), &Selection::Default)
        .unwrap_err();
    assert!(
        matches!(e, InterventionError::Unbroadcastable { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("[1, 1, 3]"));
    let three = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &dev()).unwrap();
    let e = iv
        .forward(&base, Some(&three), &Selection::Default)
        .unwrap_err();
    assert!(
        matches!(e, InterventionError::Unbroadcastable { .. }),
        "{e}"
    );
    let e = VanillaIntervention::new(4).with_source(&three).unwrap_err();
    assert!(matches!(e, InterventionError::Shape { .. }), "{e}");
    // Missing source.
    let e = iv.forward(&base, None, &Selection::Default).unwrap_err();
    assert!(matches!(e, InterventionError::MissingSource { .. }), "{e}");
    // interchange_dim past the width.
    let mut v = VanillaIntervention::new(4);
    assert!(v.set_interchange_dim(InterchangeDim::First(5)).is_err());
    assert!(v
        .set_interchange_dim(InterchangeDim::Dims(vec![0, 9]))
        .is_err());
}

#[test]
fn dtype_is_preserved() {
    let (base, source) = base_source();
    let base = base.to_dtype(DType::BF16).unwrap();
    let out = VanillaIntervention::new(4)
        .forward(&base, Some(&source), &Selection::Dims(vec![0]))
        .unwrap();
    assert_eq!(out.dtype(), DType::BF16);
    let back = out.to_dtype(DType::F32).unwrap();
    assert_eq!(v3(&back)[1][1], vec![-110., 111., 112., 113.]);
}
