//! Shared helpers of the integration tests: a collecting hook (fixtures and comparisons are
//! in vene-testutil).
#![allow(dead_code)]

use std::collections::HashMap;

use candle_core::Tensor;
use vene_hooks::{HookCall, Hooks, Site};

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
