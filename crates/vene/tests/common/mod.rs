//! Shared helpers of the facade's tests: fixture models, oracle tensors, comparisons.
#![allow(dead_code)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use vene::models::Model;

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene");

pub fn model(name: &str) -> Model {
    let dir = format!("{FIXTURES}/tiny-{name}");
    Model::from_dir(&dir, DType::F32, &Device::Cpu).expect("fixture model loads")
}

pub fn oracle(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        format!("{FIXTURES}/oracle_{name}.safetensors"),
        &Device::Cpu,
    )
    .expect("oracle loads")
}

pub fn get(o: &HashMap<String, Tensor>, key: &str) -> Tensor {
    o.get(key)
        .unwrap_or_else(|| panic!("oracle has no {key}"))
        .clone()
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

pub fn max_abs(a: &Tensor) -> f32 {
    a.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Within 1e-5 of the oracle, and (ours - base) within 2% of (oracle - base).
pub fn assert_intervened(what: &str, ours: &Tensor, expected: &Tensor, base: &Tensor) {
    let d = max_abs_diff(ours, expected);
    assert!(d <= 1e-5, "{what}: max abs diff {d} > 1e-5");
    let ours_delta = (ours - base).unwrap();
    let exp_delta = (expected - base).unwrap();
    let scale = max_abs(&exp_delta);
    assert!(
        scale > 0.0,
        "{what}: the fixture's intervention changes nothing"
    );
    let dd = max_abs_diff(&ours_delta, &exp_delta);
    assert!(
        dd <= 0.02 * scale,
        "{what}: delta differs by {dd}, 2% of the fixture's delta {scale} is {}",
        0.02 * scale
    );
}
