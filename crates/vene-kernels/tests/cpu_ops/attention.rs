use candle_core::{DType, Device, Tensor};
use vene_kernels::{attention, attention_probs, attention_values, AttentionParams, KernelError};

use crate::{fallback, flat, max_rel_diff, random};

/// A random 0/1 mask `[b, 1, t, tk]` whose query 0 of batch 0 may attend nothing.
fn mask(b: usize, t: usize, tk: usize) -> Tensor {
    let r = flat(&random(&[b, 1, t, tk], 1.0, 99));
    let v: Vec<u8> = r
        .iter()
        .enumerate()
        .map(|(i, &x)| u8::from(i >= tk && x > -0.3))
        .collect();
    Tensor::from_vec(v, (b, 1, t, tk), &Device::Cpu).unwrap()
}

#[test]
fn fused_matches_the_candle_composition() {
    let (b, h, t, tk, d) = (2, 3, 5, 7, 4);
    let q = random(&[b, h, t, d], 2.0, 1);
    let k = random(&[b, h, tk, d], 2.0, 2);
    let v = random(&[b, h, tk, 6], 2.0, 3);
    let m = mask(b, t, tk);
    let one_mask = m.narrow(0, 1, 1).unwrap().contiguous().unwrap();
    // One row per example for every query (a padding mask), per head.
    let row_mask = m.narrow(2, 3, 1).unwrap().repeat((1, h, 1, 1)).unwrap();
    let cases = [
        AttentionParams::default(),
        AttentionParams {
            scale: 0.5,
            softcap: Some(3.0),
            mask: Some(&m),
        },
        AttentionParams {
            scale: 0.125,
            softcap: None,
            mask: Some(&one_mask),
        },
        AttentionParams {
            scale: 1.0,
            softcap: Some(0.5),
            mask: Some(&row_mask),
        },
    ];
    for p in &cases {
        let probs = attention_probs(&q, &k, p).unwrap();
        let probs_slow = fallback(|| attention_probs(&q, &k, p).unwrap());
        assert_eq!(probs.dims(), [b, h, t, tk]);
        assert!(max_rel_diff(&flat(&probs), &flat(&probs_slow)) < 1e-6);
        let out = attention(&q, &k, &v, p).unwrap();
        let out_slow = fallback(|| attention(&q, &k, &v, p).unwrap());
        assert_eq!(out.dims(), [b, t, h * 6]);
        assert!(max_rel_diff(&flat(&out), &flat(&out_slow)) < 2e-6);
        let split = attention_values(&probs, &v).unwrap();
        assert!(max_rel_diff(&flat(&split), &flat(&out)) < 1e-6);
        let split_slow = fallback(|| attention_values(&probs, &v).unwrap());
        assert!(max_rel_diff(&flat(&split), &flat(&split_slow)) < 1e-6);
    }
    // The query that may attend nothing gets a uniform row: the mean of the values.
    let p = &cases[1];
    let probs = attention_probs(&q, &k, p)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap();
    let row = probs.get(0).unwrap().get(0).unwrap().get(0).unwrap();
    assert!(row
        .to_vec1::<f64>()
        .unwrap()
        .iter()
        .all(|&x| (x - 1.0 / 7.0).abs() < 1e-7));
}

#[test]
fn hand_values_with_softcap_and_scale() {
    let dev = Device::Cpu;
    // One query [1, 1], keys [2, 2] and [0, 0]: scores 4 and 0; scale 0.5: 2 and 0;
    // soft-cap 1: tanh 2 and 0.
    let q = Tensor::new(&[1f32, 1.], &dev)
        .unwrap()
        .reshape((1, 1, 1, 2))
        .unwrap();
    let k = Tensor::new(&[2f32, 2., 0., 0.], &dev)
        .unwrap()
        .reshape((1, 1, 2, 2))
        .unwrap();
    let v = Tensor::new(&[1f32, 0.], &dev)
        .unwrap()
        .reshape((1, 1, 2, 1))
        .unwrap();
    let p = AttentionParams {
        scale: 0.5,
        softcap: Some(1.0),
        mask: None,
    };
    let e = (2f64.tanh()).exp();
    let want = e / (e + 1.0);
    let out = flat(&attention(&q, &k, &v, &p).unwrap());
    assert!((out[0] as f64 - want).abs() < 1e-6, "{} vs {want}", out[0]);
}

#[test]
fn gpt2_shape_causal() {
    // Several threads over (batch, head) blocks with a shared causal mask.
    let (b, h, t, d) = (2, 12, 32, 64);
    let q = random(&[b, h, t, d], 1.0, 4);
    let k = random(&[b, h, t, d], 1.0, 5);
    let v = random(&[b, h, t, d], 1.0, 6);
    let causal: Vec<u8> = (0..t * t).map(|i| u8::from(i % t <= i / t)).collect();
    let m = Tensor::from_vec(causal, (1, 1, t, t), &Device::Cpu).unwrap();
    let p = AttentionParams {
        scale: 0.125,
        softcap: None,
        mask: Some(&m),
    };
    let out = attention(&q, &k, &v, &p).unwrap();
    let slow = fallback(|| attention(&q, &k, &v, &p).unwrap());
    assert!(max_rel_diff(&flat(&out), &flat(&slow)) < 2e-6);
    // The first query sees only the first key: its output is that value row.
    let first = out
        .get(1)
        .unwrap()
        .get(0)
        .unwrap()
        .narrow(0, 5 * d, d)
        .unwrap();
    let v0 = v.get(1).unwrap().get(5).unwrap().get(0).unwrap();
    assert_eq!(flat(&first), flat(&v0));
}

#[test]
fn bad_inputs_are_errors() {
    let q = random(&[1, 2, 3, 4], 1.0, 7);
    let k = random(&[1, 2, 5, 4], 1.0, 8);
    let v = random(&[1, 2, 5, 4], 1.0, 9);
    let float_mask = Tensor::ones((1, 1, 3, 5), DType::F32, &Device::Cpu).unwrap();
    let p = AttentionParams {
        mask: Some(&float_mask),
        ..Default::default()
    };
    let err = attention(&q, &k, &v, &p).unwrap_err();
    assert!(
        matches!(err, KernelError::WrongDType { what: "mask", .. }),
        "{err}"
    );
    let short_mask = Tensor::ones((1, 1, 3, 4), DType::U8, &Device::Cpu).unwrap();
    let p = AttentionParams {
        mask: Some(&short_mask),
        ..Default::default()
    };
    let err = attention_probs(&q, &k, &p).unwrap_err();
    assert!(
        matches!(
            err,
            KernelError::BadShape {
                op: "attention",
                ..
            }
        ),
        "{err}"
    );
    let k3 = random(&[1, 2, 5, 3], 1.0, 10);
    assert!(attention(&q, &k3, &v, &AttentionParams::default()).is_err());
    let v_short = random(&[1, 2, 4, 4], 1.0, 11);
    assert!(attention(&q, &k, &v_short, &AttentionParams::default()).is_err());
    let probs = random(&[1, 2, 3, 5], 1.0, 12);
    assert!(attention_values(&probs, &v_short).is_err());
    assert!(attention_values(&q.flatten_all().unwrap(), &v).is_err());
}
