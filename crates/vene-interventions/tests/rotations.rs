//! Rotated-space and mask interventions: hand-derived numbers, orthogonality under training.

use candle_core::{DType, Device, Tensor};
use candle_nn::Optimizer;
use vene_interventions::{
    BoundlessRotatedSpaceIntervention, Intervention, LowRankRotatedSpaceIntervention,
    RotatedSpaceIntervention, Selection, SigmoidMaskIntervention,
    SigmoidMaskRotatedSpaceIntervention,
};

fn dev() -> Device {
    Device::Cpu
}

fn flat(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < tol, "{a:?} vs {b:?}");
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// R = [[0, 1], [-1, 0]] (columns e2, -e1): rotated coordinates of x are (-x1, x0).
fn quarter_turn() -> Tensor {
    Tensor::new(&[[0f32, 1.], [-1., 0.]], &dev()).unwrap()
}

#[test]
fn rotated_swap_by_hand() {
    let iv = RotatedSpaceIntervention::from_rotation(&quarter_turn())
        .unwrap()
        .with_interchange_dim(1);
    let base = Tensor::new(&[[[1f32, 2.]]], &dev()).unwrap();
    let source = Tensor::new(&[[[5f32, 7.]]], &dev()).unwrap();
    // rb = (-2, 1), rs = (-7, 5); swap dim 0 -> (-7, 1); back: x = R (-7, 1) = (1, 7).
    let out = iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    close(&flat(&out), &[1., 7.], 1e-6);
    let out = iv
        .forward(&base, Some(&source), &Selection::Dims(vec![1]))
        .unwrap();
    close(&flat(&out), &[5., 2.], 1e-6);
}

#[test]
fn random_rotation_is_orthogonal_and_full_swap_is_source() {
    let iv = RotatedSpaceIntervention::new(6, 3, DType::F32, &dev()).unwrap();
    let r = iv.rotation().unwrap();
    let g = r.t().unwrap().matmul(&r).unwrap();
    close(
        &flat(&g),
        &flat(&Tensor::eye(6, DType::F32, &dev()).unwrap()),
        1e-5,
    );
    let base = Tensor::randn(0f32, 1., (3, 2, 6), &dev()).unwrap();
    let source = Tensor::randn(0f32, 1., (3, 2, 6), &dev()).unwrap();
    let out = iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    close(&flat(&out), &flat(&source), 1e-5);
    let none = iv
        .forward(&base, Some(&source), &Selection::Dims(vec![]))
        .unwrap();
    close(&flat(&none), &flat(&base), 1e-5);
}

#[test]
fn low_rank_by_hand_and_column_selection() {
    // Columns e0 and (e1 + e2)/sqrt(2).
    let h = std::f32::consts::FRAC_1_SQRT_2;
    let r = Tensor::new(&[[1f32, 0.], [0., h], [0., h]], &dev()).unwrap();
    let iv = LowRankRotatedSpaceIntervention::from_rotation(&r).unwrap();
    let base = Tensor::new(&[[[1f32, 2., 4.]]], &dev()).unwrap();
    let source = Tensor::new(&[[[3f32, 6., 0.]]], &dev()).unwrap();
    // diff = (2, 4, -4): coords (2, 0) -> delta (2, 0, 0).
    let out = iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    close(&flat(&out), &[3., 2., 4.], 1e-6);
    let source = Tensor::new(&[[[1f32, 6., 2.]]], &dev()).unwrap();
    // diff = (0, 4, -2): coords (0, 2/sqrt2 = sqrt2) -> delta (0, 1, 1); column 0 only: none.
    let out = iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    close(&flat(&out), &[1., 3., 5.], 1e-6);
    let out = iv
        .forward(&base, Some(&source), &Selection::Dims(vec![0]))
        .unwrap();
    close(&flat(&out), &[1., 2., 4.], 1e-6);
    assert!(iv
        .forward(&base, Some(&source), &Selection::Dims(vec![2]))
        .is_err());
}

#[test]
fn boundless_mask_formula() {
    let mut iv = BoundlessRotatedSpaceIntervention::from_parts(
        &Tensor::eye(4, DType::F32, &dev()).unwrap(),
        0.5,
        2.0,
    )
    .unwrap();
    let m = flat(&iv.mask().unwrap());
    let want: Vec<f32> = (0..4)
        .map(|i| (sigmoid(i as f64 / 2.0) * sigmoid((0.5 * 4.0 - i as f64) / 2.0)) as f32)
        .collect();
    close(&m, &want, 1e-6);
    // Identity rotation: output = (1 - m) base + m source.
    let base = Tensor::new(&[[[1f32, 1., 1., 1.]]], &dev()).unwrap();
    let source = Tensor::new(&[[[3f32, 3., 3., 3.]]], &dev()).unwrap();
    let out = iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    let expect: Vec<f32> = want.iter().map(|m| 1.0 + 2.0 * m).collect();
    close(&flat(&out), &expect, 1e-6);
    // The boundary is clamped into [1e-3, 1].
    iv.set_boundary(7.0).unwrap();
    let m = flat(&iv.mask().unwrap());
    close(&m[..1], &[(sigmoid(0.0) * sigmoid(4.0 / 2.0)) as f32], 1e-6);
}

#[test]
fn sigmoid_masks_by_hand() {
    let masks = Tensor::new(&[0f32, 2., -2.], &dev()).unwrap();
    let iv = SigmoidMaskRotatedSpaceIntervention::from_parts(
        &Tensor::eye(3, DType::F32, &dev()).unwrap(),
        &masks,
        2.0,
    )
    .unwrap();
    let base = Tensor::zeros((1, 1, 3), DType::F32, &dev()).unwrap();
    let source = Tensor::ones((1, 1, 3), DType::F32, &dev()).unwrap();
    let out = iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    close(
        &flat(&out),
        &[0.5, sigmoid(1.0) as f32, sigmoid(-1.0) as f32],
        1e-6,
    );
    let iv = SigmoidMaskIntervention::from_parts(&masks, 0.5).unwrap();
    let out = iv
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    close(
        &flat(&out),
        &[0.5, sigmoid(4.0) as f32, sigmoid(-4.0) as f32],
        1e-6,
    );
    // pyvene's inits: masks 100 at T = 50 -> sigmoid(2); mask 0 -> 0.5.
    let fresh = SigmoidMaskRotatedSpaceIntervention::new(3, 0, DType::F32, &dev()).unwrap();
    assert_eq!(fresh.vars().len(), 2);
}

/// A few Adam steps of DAS: the loss goes down and the rotation stays orthogonal.
#[test]
fn training_keeps_rotation_orthogonal() {
    let d = 8;
    let iv = RotatedSpaceIntervention::new(d, 5, DType::F32, &dev())
        .unwrap()
        .with_interchange_dim(2);
    let base = Tensor::randn(0f32, 1., (16, 1, d), &dev()).unwrap();
    let source = Tensor::randn(0f32, 1., (16, 1, d), &dev()).unwrap();
    // Target: the source's first two original coordinates swapped in.
    let target = vene_interventions::VanillaIntervention::new(d)
        .with_interchange_dim(2)
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    let mut opt = candle_nn::AdamW::new(
        iv.vars(),
        candle_nn::ParamsAdamW {
            lr: 0.05,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let loss = |iv: &RotatedSpaceIntervention| {
        let out = iv
            .forward(&base, Some(&source), &Selection::Default)
            .unwrap();
        (out - &target).unwrap().sqr().unwrap().mean_all().unwrap()
    };
    let first = loss(&iv).to_scalar::<f32>().unwrap();
    for _ in 0..60 {
        let l = loss(&iv);
        opt.backward_step(&l).unwrap();
    }
    let last = loss(&iv).to_scalar::<f32>().unwrap();
    assert!(last < first * 0.5, "loss {first} -> {last}");
    let r = iv.rotation().unwrap();
    let g = r.t().unwrap().matmul(&r).unwrap();
    close(
        &flat(&g),
        &flat(&Tensor::eye(d, DType::F32, &dev()).unwrap()),
        1e-5,
    );
}
