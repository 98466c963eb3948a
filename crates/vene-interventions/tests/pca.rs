//! PCARotatedSpaceIntervention: the fitted PCA against a hand-derived one, the forward against
//! pyvene's numbers (tests/fixtures/pca, made by scripts/make_pca_fixture.py), rebuilding
//! from its state dict, and the errors of bad input.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use vene_interventions::{
    build_intervention, InterchangeDim, Intervention, PCARotatedSpaceIntervention, PcaFitOptions,
    Selection,
};
use vene_testutil::max_abs_diff;

/// Six points `m ± 3 u1`, `m ± 2 u2`, `m ± u3` around `m = (1, 2, 3)`, with the orthonormal
/// axes `u1 = (0.8, 0.6, 0)`, `u2 = (0.6, -0.8, 0)`, `u3 = (0, 0, 1)`: the covariance is
/// `(18 u1 u1ᵀ + 8 u2 u2ᵀ + 2 u3 u3ᵀ) / 5`, so the components are u1, u2, u3 in that order.
fn axis_points() -> Tensor {
    let m = [1.0, 2.0, 3.0];
    let axes = [
        ([0.8, 0.6, 0.0], 3.0),
        ([0.6, -0.8, 0.0], 2.0),
        ([0.0, 0.0, 1.0], 1.0),
    ];
    let mut rows = Vec::new();
    for (u, s) in axes {
        for sign in [1.0, -1.0] {
            rows.extend((0..3).map(|j| m[j] + sign * s * u[j]));
        }
    }
    Tensor::from_vec(rows, (6, 3), &Device::Cpu).unwrap()
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}]: {g} vs {w}");
    }
}

fn flat(t: &Tensor) -> Vec<f64> {
    t.to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn fitted_components_are_the_known_axes() {
    let pca = PCARotatedSpaceIntervention::fit(&axis_points(), PcaFitOptions::default()).unwrap();
    // u2's largest entry (-0.8) is made positive: sklearn's sign convention
    close(
        &flat(&pca.components().unwrap()),
        &[0.8, 0.6, 0.0, -0.6, 0.8, 0.0, 0.0, 0.0, 1.0],
        1e-12,
        "components",
    );
    close(&flat(pca.mean()), &[1.0, 2.0, 3.0], 1e-12, "mean");
    close(&flat(pca.std()), &[1.0, 1.0, 1.0], 0.0, "std");
    assert_eq!(pca.n_components(), 3);

    let two =
        PCARotatedSpaceIntervention::fit(&axis_points(), PcaFitOptions::default().n_components(2))
            .unwrap();
    close(
        &flat(&two.components().unwrap()),
        &[0.8, 0.6, 0.0, -0.6, 0.8, 0.0],
        1e-12,
        "two components",
    );
    assert_eq!(two.hyperparams()["n_components"], 2);
}

#[test]
fn normalized_fit_divides_by_the_population_std() {
    let pts = axis_points();
    let pca =
        PCARotatedSpaceIntervention::fit(&pts, PcaFitOptions::default().normalize(true)).unwrap();
    // x: 1 ± 2.4, 1 ± 1.2, 1, 1 -> var (2 * 5.76 + 2 * 1.44) / 6 = 2.4
    // y: 2 ± 1.8, 2 ± 1.6, 2, 2 -> var (2 * 3.24 + 2 * 2.56) / 6 = 5.8 / 3
    // z: 3, 3, 3, 3, 4, 2 -> var 2 / 6
    close(
        &flat(pca.std()),
        &[2.4f64.sqrt(), (5.8f64 / 3.0).sqrt(), (1.0f64 / 3.0).sqrt()],
        1e-12,
        "std",
    );
    // The scaled data's covariance: z is uncorrelated with x and y, so one component is the
    // z axis; x and y (correlation r) give (1, ±1)/√2 with variances (1 ± r) * 6/5.
    let c = pca.components().unwrap().to_vec2::<f64>().unwrap();
    let h = std::f64::consts::FRAC_1_SQRT_2;
    // cov(x, y) = (2 * 2.4 * 1.8 - 2 * 1.2 * 1.6) / 6 = 0.8 > 0: (1, 1)/√2 has the most
    // variance (1 + r) * 6/5 with r = 0.8 / sqrt(2.4 * 5.8 / 3) = 0.371, then z (6/5), then
    // (1, -1)/√2 ((1 - r) * 6/5).
    close(&c[0], &[h, h, 0.0], 1e-12, "first");
    close(&c[1], &[0.0, 0.0, 1.0], 1e-12, "second");
    close(
        &c[2].iter().map(|v| v.abs()).collect::<Vec<_>>(),
        &[h, h, 0.0],
        1e-12,
        "third",
    );
    assert!(c[2][0] * c[2][1] < 0.0);
}

#[test]
fn swapping_every_component_gives_the_source() {
    let pca = PCARotatedSpaceIntervention::fit(&axis_points(), PcaFitOptions::default()).unwrap();
    let base = Tensor::new(&[[[1.0f64, -2.0, 0.5]]], &Device::Cpu).unwrap();
    let source = Tensor::new(&[[[4.0f64, 3.0, -1.0]]], &Device::Cpu).unwrap();
    let out = pca
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    assert!(max_abs_diff(&out, &source) < 1e-12);
    // Swapping only u3 (the z axis) swaps z.
    let out = pca
        .forward(&base, Some(&source), &Selection::Dims(vec![2]))
        .unwrap();
    close(&flat(&out), &[1.0, -2.0, -1.0], 1e-12, "z swapped");
}

fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/pca/pyvene_pca_forward.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn tensor(v: &serde_json::Value, dims: &[usize]) -> Tensor {
    fn push(v: &serde_json::Value, out: &mut Vec<f32>) {
        match v {
            serde_json::Value::Array(a) => a.iter().for_each(|x| push(x, out)),
            x => out.push(x.as_f64().unwrap() as f32),
        }
    }
    let mut data = Vec::new();
    push(v, &mut data);
    Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
}

fn fixture_pca(f: &serde_json::Value) -> PCARotatedSpaceIntervention {
    PCARotatedSpaceIntervention::from_parts(
        &tensor(&f["components"], &[3, 5]),
        &tensor(&f["mean"], &[5]),
        &tensor(&f["std"], &[5]),
    )
    .unwrap()
}

#[test]
fn forward_matches_pyvene() {
    let f = fixture();
    let base = tensor(&f["base"], &[2, 2, 5]);
    let source = tensor(&f["source"], &[2, 2, 5]);
    let out = |name: &str| tensor(&f["outputs"][name], &[2, 2, 5]);
    let pca = fixture_pca(&f);
    let cases = [
        ("default", Selection::Default),
        ("dims_0_2", Selection::Dims(vec![0, 2])),
        (
            "per_example",
            Selection::PerExample(vec![vec![1], vec![0, 2]]),
        ),
    ];
    for (name, sel) in cases {
        let got = pca.forward(&base, Some(&source), &sel).unwrap();
        let err = max_abs_diff(&got, &out(name));
        assert!(err < 1e-5, "{name}: {err}");
    }
    // With k = 3 < d = 5 the output lies in the PCA subspace: it is not the base.
    assert!(max_abs_diff(&out("dims_0_2"), &base) > 1e-2);
    let mut first = pca.clone();
    first.set_interchange_dim(InterchangeDim::First(1)).unwrap();
    let got = first
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    assert!(max_abs_diff(&got, &out("interchange_dim_1")) < 1e-5);
}

#[test]
fn rebuilds_from_its_state_dict_bit_exact() {
    let f = fixture();
    let mut pca = fixture_pca(&f);
    pca.set_interchange_dim(InterchangeDim::Dims(vec![2, 0]))
        .unwrap();
    let state: HashMap<String, Tensor> = pca.state_dict().unwrap().into_iter().collect();
    let again = build_intervention(
        "<class 'pyvene.models.interventions.PCARotatedSpaceIntervention'>",
        5,
        &pca.hyperparams(),
        &state,
        &Device::Cpu,
        DType::F32,
    )
    .unwrap();
    assert_eq!(again.type_name(), "PCARotatedSpaceIntervention");
    assert!(again.vars().is_empty());
    for ((na, a), (nb, b)) in pca
        .state_dict()
        .unwrap()
        .iter()
        .zip(again.state_dict().unwrap())
    {
        assert_eq!(na, &nb);
        assert_eq!(flat(a), flat(&b), "{na}");
    }
    let base = tensor(&f["base"], &[2, 2, 5]);
    let source = tensor(&f["source"], &[2, 2, 5]);
    let a = pca
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    let b = again
        .forward(&base, Some(&source), &Selection::Default)
        .unwrap();
    assert_eq!(flat(&a), flat(&b));
}

#[test]
fn bad_input_is_a_clear_error() {
    let fresh = build_intervention(
        "PCARotatedSpaceIntervention",
        5,
        &serde_json::json!({}),
        &HashMap::new(),
        &Device::Cpu,
        DType::F32,
    )
    .unwrap_err()
    .to_string();
    assert!(
        fresh.contains("PCARotatedSpaceIntervention::fit"),
        "{fresh}"
    );

    let flat_z = Tensor::new(&[[1.0f32, 5.0], [2.0, 5.0], [3.0, 5.0]], &Device::Cpu).unwrap();
    let e = PCARotatedSpaceIntervention::fit(&flat_z, PcaFitOptions::default().normalize(true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dim 1") && e.contains("standard deviation 0"),
        "{e}"
    );
    // without normalising, a constant dim is fine: it gets the least variance
    let ok = PCARotatedSpaceIntervention::fit(&flat_z, PcaFitOptions::default().n_components(1))
        .unwrap();
    close(
        &flat(&ok.components().unwrap()),
        &[1.0, 0.0],
        1e-12,
        "constant dim",
    );

    let e =
        PCARotatedSpaceIntervention::fit(&axis_points(), PcaFitOptions::default().n_components(4))
            .unwrap_err()
            .to_string();
    assert!(e.contains("n_components"), "{e}");
    let one_row = Tensor::zeros((1, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(PCARotatedSpaceIntervention::fit(&one_row, PcaFitOptions::default()).is_err());

    let pca =
        PCARotatedSpaceIntervention::fit(&axis_points(), PcaFitOptions::default().n_components(2))
            .unwrap();
    let base = Tensor::zeros((1, 1, 3), DType::F64, &Device::Cpu).unwrap();
    let e = pca
        .forward(&base, Some(&base), &Selection::Dims(vec![2]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("PCA space") && e.contains("width 2"), "{e}");
}

/// On correlated random data (d = 12): the components are orthonormal and diagonalise the
/// sample covariance, with decreasing variances (the defining properties of a PCA).
#[test]
fn components_diagonalise_the_covariance() {
    let (n, d) = (50usize, 12usize);
    let mut s = 12345u64;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 11) as f64 / (1u64 << 53) as f64) - 0.5
    };
    let raw: Vec<f64> = (0..n * d).map(|_| next()).collect();
    // correlate the dims: x[j] += 0.7 * x[j - 1]
    let mut x = raw;
    for i in 0..n {
        for j in 1..d {
            x[i * d + j] += 0.7 * x[i * d + j - 1];
        }
    }
    let acts = Tensor::from_vec(x.clone(), (n, d), &Device::Cpu).unwrap();
    let pca = PCARotatedSpaceIntervention::fit(&acts, PcaFitOptions::default()).unwrap();
    let c = pca.components().unwrap().to_vec2::<f64>().unwrap();
    assert_eq!(c.len(), d);
    let mean: Vec<f64> = (0..d)
        .map(|j| (0..n).map(|i| x[i * d + j]).sum::<f64>() / n as f64)
        .collect();
    let cov = |a: usize, b: usize| {
        (0..n)
            .map(|i| (x[i * d + a] - mean[a]) * (x[i * d + b] - mean[b]))
            .sum::<f64>()
            / (n - 1) as f64
    };
    let cov: Vec<Vec<f64>> = (0..d)
        .map(|a| (0..d).map(|b| cov(a, b)).collect())
        .collect();
    let dot = |u: &[f64], v: &[f64]| u.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
    let mut last = f64::INFINITY;
    for p in 0..d {
        let cp: Vec<f64> = (0..d).map(|a| dot(&cov[a], &c[p])).collect();
        for q in 0..d {
            let want = if p == q { 1.0 } else { 0.0 };
            assert!((dot(&c[p], &c[q]) - want).abs() < 1e-12, "C Cᵀ [{p}][{q}]");
            if p != q {
                assert!(dot(&c[q], &cp).abs() < 1e-12, "off-diagonal [{p}][{q}]");
            }
        }
        let var = dot(&c[p], &cp);
        assert!(
            var <= last + 1e-12,
            "variances decrease: {var} after {last}"
        );
        last = var;
        // sklearn's sign: the largest-magnitude entry is positive
        let big = c[p]
            .iter()
            .copied()
            .fold(0.0f64, |m, v| if v.abs() > m.abs() { v } else { m });
        assert!(big > 0.0);
    }
}
