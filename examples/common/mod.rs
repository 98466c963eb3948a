//! Shared by vene's examples (each includes this folder with `#[path]`): an offline model
//! folder and SAE folder made on the spot, and the city -> country prompts.
//!
//! Not every example uses every item, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod cities;
pub mod offline;
