//! The SAE kinds whose reconstruction depends on the input (layer norm, constant norm
//! rescale, skip connection) and the gated SAE, inside the autoencoder interventions: the
//! swapped latent is decoded as the *base's* reconstruction (the base's statistics and skip
//! term), on the rank-k path and the plain path alike, in both modes; saved interventions
//! rebuild bit for bit; transcoders are refused.

use std::collections::HashMap;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use vene_autoencoder::{
    Autoencoder, GatedAutoencoder, InputNormalization, JumpReLUAutoencoder, ReluAutoencoder,
    TopKAutoencoder, LAYER_NORM_EPS,
};
use vene_interventions::{
    build_intervention, AutoencoderIntervention, AutoencoderMode, Intervention, InterventionError,
    JumpReLUAutoencoderIntervention, Selection,
};

const D: usize = 4;
const L: usize = 6;
const DIMS: [usize; 3] = [1, 4, 5];

fn dev() -> Device {
    Device::Cpu
}

/// Deterministic numbers in `(-scale, scale)` (a small LCG: the test needs no RNG crate).
fn numbers(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * scale
        })
        .collect()
}

fn mat(seed: u64, r: usize, c: usize, scale: f32) -> Vec<Vec<f32>> {
    numbers(seed, r * c, scale)
        .chunks(c)
        .map(|row| row.to_vec())
        .collect()
}

fn t2(m: &[Vec<f32>]) -> Tensor {
    Tensor::new(m.to_vec(), &dev()).unwrap()
}

fn t1(v: &[f32]) -> Tensor {
    Tensor::new(v, &dev()).unwrap()
}

struct W {
    w_enc: Vec<Vec<f32>>, // [D, L]
    b_enc: Vec<f32>,
    w_dec: Vec<Vec<f32>>, // [L, D]
    b_dec: Vec<f32>,
    w_skip: Vec<Vec<f32>>, // [D, D], out x in
}

fn weights(seed: u64) -> W {
    W {
        w_enc: mat(seed, D, L, 0.9),
        b_enc: numbers(seed + 1, L, 0.2),
        w_dec: mat(seed + 2, L, D, 0.9),
        b_dec: numbers(seed + 3, D, 0.2),
        w_skip: mat(seed + 4, D, D, 0.5),
    }
}

/// Rows of the base and the source, `[2, 3, D]`, offset so that layer-norm statistics of base
/// and source differ.
fn base_source() -> (Tensor, Tensor) {
    let base = (Tensor::new(numbers(10, 2 * 3 * D, 1.5), &dev())
        .unwrap()
        .reshape((2, 3, D))
        .unwrap()
        + 0.7)
        .unwrap();
    let source = (Tensor::new(numbers(11, 2 * 3 * D, 3.0), &dev())
        .unwrap()
        .reshape((2, 3, D))
        .unwrap()
        - 1.1)
        .unwrap();
    (base, source)
}

fn rows(t: &Tensor) -> Vec<Vec<f32>> {
    let d = t.dim(candle_core::D::Minus1).unwrap();
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .chunks(d)
        .map(|c| c.to_vec())
        .collect()
}

fn close(got: &Tensor, want: &[Vec<f32>], tol: f32, what: &str) {
    let got = rows(got);
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        for (j, (a, b)) in g.iter().zip(w).enumerate() {
            assert!((a - b).abs() <= tol, "{what}[{i}][{j}]: got {a}, want {b}");
        }
    }
}

/// Relu SAE with layer norm and a skip connection, written out: returns
/// `(latent, reconstruction from latent z for input x)` closures' results.
fn ln_stats(x: &[f32]) -> (f64, f64) {
    let n = x.len() as f64;
    let mu = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / (n - 1.0);
    (mu, var.sqrt())
}

fn hand_encode(w: &W, x: &[f32]) -> Vec<f64> {
    let (mu, sd) = ln_stats(x);
    let xc: Vec<f64> = x
        .iter()
        .zip(&w.b_dec)
        .map(|(&v, &b)| (v as f64 - mu) / (sd + LAYER_NORM_EPS) - b as f64)
        .collect();
    (0..L)
        .map(|j| {
            let pre: f64 = w.b_enc[j] as f64
                + xc.iter()
                    .enumerate()
                    .map(|(k, v)| v * w.w_enc[k][j] as f64)
                    .sum::<f64>();
            pre.max(0.0)
        })
        .collect()
}

fn hand_decode_for(w: &W, z: &[f64], x: &[f32]) -> Vec<f32> {
    let (mu, sd) = ln_stats(x);
    (0..D)
        .map(|i| {
            let y: f64 = w.b_dec[i] as f64
                + z.iter()
                    .enumerate()
                    .map(|(j, v)| v * w.w_dec[j][i] as f64)
                    .sum::<f64>();
            let skip: f64 = (0..D).map(|k| w.w_skip[i][k] as f64 * x[k] as f64).sum();
            (y * sd + mu + skip) as f32
        })
        .collect()
}

fn ln_skip_sae(w: &W) -> ReluAutoencoder {
    ReluAutoencoder::from_tensors(t2(&w.w_enc), t1(&w.b_enc), t2(&w.w_dec), t1(&w.b_dec))
        .unwrap()
        .with_input_normalization(InputNormalization::LayerNorm)
        .with_skip(t2(&w.w_skip))
        .unwrap()
}

#[test]
fn layer_norm_and_skip_swap_decodes_as_the_base() {
    let w = weights(1);
    let sae = ln_skip_sae(&w);
    let (base, source) = base_source();
    let (b_rows, s_rows) = (rows(&base), rows(&source));
    let mut want_rec = vec![];
    let mut want_keep = vec![];
    let mut naive = vec![];
    for (b, s) in b_rows.iter().zip(&s_rows) {
        let zb = hand_encode(&w, b);
        let zs = hand_encode(&w, s);
        let mut z = zb.clone();
        for &d in &DIMS {
            z[d] = zs[d];
        }
        let rec = hand_decode_for(&w, &z, b);
        let plain = hand_decode_for(&w, &zb, b);
        want_keep.push(
            b.iter()
                .zip(rec.iter().zip(&plain))
                .map(|(x, (r, p))| x + r - p)
                .collect::<Vec<f32>>(),
        );
        want_rec.push(rec);
        // what decoding with the source's statistics and skip term would give
        naive.push(hand_decode_for(&w, &z, s));
    }
    assert!(
        want_rec
            .iter()
            .flatten()
            .zip(naive.iter().flatten())
            .any(|(a, b)| (a - b).abs() > 1e-2),
        "base and source statistics must differ for the test to mean anything"
    );
    // the swap actually changes some latent
    let changed = b_rows.iter().zip(&s_rows).any(|(b, s)| {
        let (zb, zs) = (hand_encode(&w, b), hand_encode(&w, s));
        DIMS.iter().any(|&d| (zb[d] - zs[d]).abs() > 1e-3)
    });
    assert!(changed);
    let ae: Arc<dyn Autoencoder> = Arc::new(sae);
    for selective in [true, false] {
        let iv = AutoencoderIntervention::new(ae.clone())
            .unwrap()
            .with_interchange_dim(DIMS.to_vec())
            .unwrap()
            .with_selective(selective);
        let out = iv
            .forward(&base, Some(&source), &Selection::Default)
            .unwrap();
        close(
            &out,
            &want_rec,
            1e-5,
            &format!("reconstruction, selective {selective}"),
        );
        let keep = iv.clone().with_mode(AutoencoderMode::ErrorPreserving);
        let out = keep
            .forward(&base, Some(&source), &Selection::Default)
            .unwrap();
        close(
            &out,
            &want_keep,
            1e-5,
            &format!("error-preserving, selective {selective}"),
        );
    }
    // per-example selections (the plain path): example 0 swaps DIMS, example 1 nothing
    let iv = AutoencoderIntervention::new(ae).unwrap();
    let sel = Selection::PerExample(vec![DIMS.to_vec(), vec![]]);
    let out = iv.forward(&base, Some(&source), &sel).unwrap();
    let mut want = want_rec[..3].to_vec();
    for b in &b_rows[3..] {
        want.push(hand_decode_for(&w, &hand_encode(&w, b), b));
    }
    close(&out, &want, 1e-5, "per example");
}

/// Every kind: both paths, both modes, equal to encode / swap / decode_for(., base) composed
/// from the autoencoder's own (separately tested) primitives.
#[test]
fn every_kind_swaps_through_decode_for() {
    let w = weights(2);
    let (ew, eb, dw, db) = (t2(&w.w_enc), t1(&w.b_enc), t2(&w.w_dec), t1(&w.b_dec));
    let skip = t2(&w.w_skip);
    let gated = GatedAutoencoder::from_tensors(
        ew.clone(),
        eb.clone(),
        t1(&numbers(20, L, 0.5)),
        t1(&numbers(21, L, 0.2)),
        dw.clone(),
        db.clone(),
    )
    .unwrap();
    let kinds: Vec<(&str, Arc<dyn Autoencoder>)> = vec![
        ("gated", Arc::new(gated.clone())),
        (
            "gated layer_norm",
            Arc::new(gated.with_input_normalization(InputNormalization::LayerNorm)),
        ),
        (
            "topk constant_norm_rescale",
            Arc::new(
                TopKAutoencoder::from_tensors(ew.clone(), eb.clone(), dw.clone(), db.clone(), 3)
                    .unwrap()
                    .with_input_normalization(InputNormalization::ConstantNormRescale),
            ),
        ),
        (
            "jumprelu skip",
            Arc::new(
                JumpReLUAutoencoder::from_tensors(
                    ew.clone(),
                    eb.clone(),
                    dw.clone(),
                    db.clone(),
                    Tensor::full(0.1f32, L, &dev()).unwrap(),
                )
                .unwrap()
                .with_skip(skip.clone())
                .unwrap(),
            ),
        ),
        ("relu layer_norm skip", Arc::new(ln_skip_sae(&w))),
    ];
    let (base, source) = base_source();
    for (name, ae) in kinds {
        let zb = ae.encode(&base).unwrap();
        let zs = ae.encode(&source).unwrap();
        let mut z = rows(&zb);
        for (r, s) in z.iter_mut().zip(rows(&zs)) {
            for &d in &DIMS {
                r[d] = s[d];
            }
        }
        let z = t2(&z).reshape((2, 3, L)).unwrap();
        let want_rec = rows(&ae.decode_for(&z, &base).unwrap());
        let want_keep = rows(
            &((&base + ae.decode_for(&z, &base).unwrap()).unwrap()
                - ae.decode_for(&zb, &base).unwrap())
            .unwrap(),
        );
        for selective in [true, false] {
            let iv = AutoencoderIntervention::new(ae.clone())
                .unwrap()
                .with_interchange_dim(DIMS.to_vec())
                .unwrap()
                .with_selective(selective);
            let out = iv
                .forward(&base, Some(&source), &Selection::Default)
                .unwrap();
            close(
                &out,
                &want_rec,
                1e-5,
                &format!("{name} selective {selective}"),
            );
            let out = iv
                .with_mode(AutoencoderMode::ErrorPreserving)
                .forward(&base, Some(&source), &Selection::Default)
                .unwrap();
            close(&out, &want_keep, 1e-5, &format!("{name} keep {selective}"));
        }
    }
}

/// A saved intervention around each new kind rebuilds bit for bit.
#[test]
fn saved_interventions_rebuild_bit_for_bit() {
    let w = weights(3);
    let gated = GatedAutoencoder::from_tensors(
        t2(&w.w_enc),
        t1(&w.b_enc),
        t1(&numbers(30, L, 0.5)),
        t1(&numbers(31, L, 0.2)),
        t2(&w.w_dec),
        t1(&w.b_dec),
    )
    .unwrap()
    .with_input_normalization(InputNormalization::ConstantNormRescale)
    .with_skip(t2(&w.w_skip))
    .unwrap();
    let kinds: Vec<(&str, Arc<dyn Autoencoder>)> = vec![
        ("gated", Arc::new(gated)),
        ("relu", Arc::new(ln_skip_sae(&w))),
    ];
    let (base, source) = base_source();
    for (kind, ae) in kinds {
        let iv = AutoencoderIntervention::new(ae)
            .unwrap()
            .with_interchange_dim(DIMS.to_vec())
            .unwrap();
        let hp = iv.hyperparams();
        assert_eq!(hp["autoencoder_kind"], kind);
        let state: HashMap<String, Tensor> = iv.state_dict().unwrap().into_iter().collect();
        assert!(state.contains_key("autoencoder.W_skip"), "{kind}");
        let again = build_intervention(
            "AutoencoderIntervention",
            D,
            &hp,
            &state,
            &dev(),
            DType::F32,
        )
        .unwrap();
        assert_eq!(again.hyperparams(), hp);
        let a = iv
            .forward(&base, Some(&source), &Selection::Default)
            .unwrap();
        let b = again
            .forward(&base, Some(&source), &Selection::Default)
            .unwrap();
        let bits = |t: &Tensor| -> Vec<u32> {
            t.flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&a), bits(&b), "{kind}");
    }
}

#[test]
fn transcoders_are_refused_by_the_interchange() {
    let tc = ReluAutoencoder::transcoder(
        t2(&mat(40, D, L, 0.5)),
        t1(&numbers(41, L, 0.1)),
        t2(&mat(42, L, 3, 0.5)),
        t1(&numbers(43, 3, 0.1)),
    )
    .unwrap();
    assert_eq!((tc.input_dim(), tc.output_dim()), (D, 3));
    let err = AutoencoderIntervention::new(Arc::new(tc)).unwrap_err();
    assert!(
        matches!(err, InterventionError::Unsupported(ref m) if m.contains("transcoder")),
        "{err}"
    );
}

#[test]
fn jumprelu_intervention_keeps_the_normalisation() {
    let w = weights(4);
    let sae = JumpReLUAutoencoder::from_tensors(
        t2(&w.w_enc),
        t1(&w.b_enc),
        t2(&w.w_dec),
        t1(&w.b_dec),
        Tensor::full(0.05f32, L, &dev()).unwrap(),
    )
    .unwrap()
    .with_input_normalization(InputNormalization::LayerNorm);
    let iv = JumpReLUAutoencoderIntervention::from_autoencoder(sae.clone()).unwrap();
    let (base, source) = base_source();
    let sel = Selection::Dims(DIMS.to_vec());
    let out = iv.forward(&base, Some(&source), &sel).unwrap();
    let generic = AutoencoderIntervention::new(Arc::new(sae)).unwrap();
    let want = generic.forward(&base, Some(&source), &sel).unwrap();
    close(&out, &rows(&want), 1e-5, "jumprelu intervention");
    // moved to f64 and back, the normalisation is kept
    let moved = iv.to_dtype(DType::F64).unwrap();
    let out64 = moved
        .forward(
            &base.to_dtype(DType::F64).unwrap(),
            Some(&source.to_dtype(DType::F64).unwrap()),
            &sel,
        )
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    close(&out64, &rows(&want), 1e-5, "moved");
    // pyvene's format cannot hold it: saving says so instead of dropping it
    let err = iv.state_dict().unwrap_err();
    assert!(matches!(err, InterventionError::Unsupported(_)), "{err}");
}
