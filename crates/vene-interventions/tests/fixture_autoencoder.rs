//! The autoencoder interventions against pyvene's numbers (tests/fixtures/pyvene).

use std::collections::HashMap;

use candle_core::Tensor;
use vene_autoencoder::AutoencoderLayer;
use vene_interventions::{
    AutoencoderIntervention, Intervention, JumpReLUAutoencoderIntervention, Selection,
};
use vene_testutil::{get, max_abs_diff, oracle};

fn ae_from(o: &HashMap<String, Tensor>, case: &str) -> AutoencoderLayer {
    AutoencoderLayer::from_state_dict(o, &format!("{case}.autoencoder."), case).unwrap()
}

/// `ae_idx`: set_interchange_dim([3, 7, 11, 20, 31]), one position per example.
#[test]
fn ae_idx_matches_pyvene_on_both_paths() {
    for model in ["gpt2", "llama"] {
        let o = oracle(model);
        let case = format!("{model}.ae_idx");
        let base = get(&o, &format!("{case}.ae_in_base")).unsqueeze(1).unwrap();
        let source = get(&o, &format!("{case}.ae_in_source"))
            .unsqueeze(1)
            .unwrap();
        let want = get(&o, &format!("{case}.ae_out")).unsqueeze(1).unwrap();
        let iv = AutoencoderIntervention::from_layer(ae_from(&o, &case))
            .unwrap()
            .with_interchange_dim(vec![3, 7, 11, 20, 31])
            .unwrap();
        for selective in [true, false] {
            let iv = iv.clone().with_selective(selective);
            let out = iv
                .forward(&base, Some(&source), &Selection::Default)
                .unwrap();
            let err = max_abs_diff(&out, &want);
            assert!(err < 1e-5, "{case} selective={selective}: {err}");
        }
        // The intervention changes the output (a no-op would not match).
        assert!(max_abs_diff(&base, &want) > 1e-2);
    }
}

/// `ae_default_dim`: pyvene's accidental default (latent `embed_dim`) is reproduced by an
/// explicit selection; vene's own default (none) gives the plain reconstruction.
#[test]
fn ae_default_dim_reproduced_by_explicit_selection() {
    for model in ["gpt2", "llama"] {
        let o = oracle(model);
        let case = format!("{model}.ae_default_dim");
        let base = get(&o, &format!("{case}.ae_in_base")).unsqueeze(1).unwrap();
        let source = get(&o, &format!("{case}.ae_in_source"))
            .unsqueeze(1)
            .unwrap();
        let want = get(&o, &format!("{case}.ae_out")).unsqueeze(1).unwrap();
        let layer = ae_from(&o, &case);
        let iv = AutoencoderIntervention::from_layer(layer.clone()).unwrap();
        let out = iv
            .forward(&base, Some(&source), &Selection::Dims(vec![16]))
            .unwrap();
        assert!(max_abs_diff(&out, &want) < 1e-5, "{case}");
        // Default: no swap, output = decode(encode(base)).
        let recon = iv
            .forward(&base, Some(&source), &Selection::Default)
            .unwrap();
        let (want_recon, _) = vene_autoencoder::Autoencoder::forward(&layer, &base, false).unwrap();
        assert!(max_abs_diff(&recon, &want_recon) < 1e-6, "{case}");
    }
}

/// JumpReLU with pyvene's fixture weights, against an independent loop implementation of
/// pyvene's formulas, on the fixture's block outputs (2 positions per example).
#[test]
fn jumprelu_matches_loop_reference_with_fixture_weights() {
    for (case, sel, dims) in [
        (
            "jumprelu_default",
            Selection::Default,
            (0..16).collect::<Vec<usize>>(),
        ),
        (
            "jumprelu_sub",
            Selection::Dims(vec![2, 5, 17]),
            vec![2, 5, 17],
        ),
    ] {
        let o = oracle("gpt2");
        let w = |n: &str| get(&o, &format!("gpt2.{case}.{n}"));
        let iv = JumpReLUAutoencoderIntervention::from_tensors(
            w("W_enc"),
            w("b_enc"),
            w("W_dec"),
            w("b_dec"),
            w("threshold"),
        )
        .unwrap();
        let acts = get(&o, "gpt2.sweep.collect.l1.block_output.base_allpos"); // [2, 6, 16]
        let base = acts.narrow(1, 4, 2).unwrap().contiguous().unwrap();
        let source = acts.narrow(1, 1, 2).unwrap().contiguous().unwrap();
        let out = iv.forward(&base, Some(&source), &sel).unwrap();

        let v2 = |t: Tensor| t.to_vec2::<f32>().unwrap();
        let v1 = |t: Tensor| t.to_vec1::<f32>().unwrap();
        let (we, wd) = (v2(w("W_enc")), v2(w("W_dec")));
        let (be, bd, th) = (v1(w("b_enc")), v1(w("b_dec")), v1(w("threshold")));
        let encode = |x: &[f32]| -> Vec<f32> {
            (0..24)
                .map(|j| {
                    let pre: f32 = (0..16).map(|i| x[i] * we[i][j]).sum::<f32>() + be[j];
                    if pre > th[j] {
                        pre.max(0.0)
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let b3 = base.to_vec3::<f32>().unwrap();
        let s3 = source.to_vec3::<f32>().unwrap();
        let o3 = out.to_vec3::<f32>().unwrap();
        let mut changed = 0.0f32;
        for b in 0..2 {
            for p in 0..2 {
                let mut zb = encode(&b3[b][p]);
                let zs = encode(&s3[b][p]);
                for &d in &dims {
                    zb[d] = zs[d];
                }
                for k in 0..16 {
                    let want: f32 = (0..24).map(|j| zb[j] * wd[j][k]).sum::<f32>() + bd[k];
                    assert!((o3[b][p][k] - want).abs() < 1e-5, "{case} {b} {p} {k}");
                    changed = changed.max((want - b3[b][p][k]).abs());
                }
            }
        }
        assert!(changed > 1e-3, "{case}: the test data must move the output");
    }
}
