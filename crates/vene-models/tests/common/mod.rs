//! Shared helpers of the integration tests: fixtures, a collecting hook, comparisons.
#![allow(dead_code)]

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use vene_hooks::{HookCall, Hooks, Site};

pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene");

pub fn fixture(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(FIXTURES).join(rel)
}

/// The oracle tensors of `model` ("gpt2" or "llama").
pub fn oracle(model: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixture(&format!("oracle_{model}.safetensors")),
        &Device::Cpu,
    )
    .expect("oracle file loads")
}

pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a.to_dtype(DType::F32).unwrap();
    let b = b.to_dtype(DType::F32).unwrap();
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

/// Records what the model passes at some sites (and every call's seq_offset).
#[derive(Default)]
pub struct Collect {
    pub sites: Vec<Site>,
    pub got: HashMap<Site, Vec<Tensor>>,
    pub offsets: Vec<(Site, usize)>,
}

impl Collect {
    pub fn at(sites: Vec<Site>) -> Self {
        Self {
            sites,
            ..Default::default()
        }
    }
}

impl Hooks for Collect {
    fn is_active(&self, site: Site) -> bool {
        self.sites.contains(&site)
    }
    fn on_activation(&mut self, call: HookCall, x: Tensor) -> vene_hooks::Result<Tensor> {
        self.got.entry(call.site).or_default().push(x.clone());
        self.offsets.push((call.site, call.seq_offset));
        Ok(x)
    }
}
