//! Test helpers shared by vene's crates, used only as a dev-dependency: paths of the
//! fixtures in `tests/fixtures/`, the pyvene oracle tensors, and tensor comparisons.
//!
//! The helpers panic on failure (they are meant for tests), naming what went wrong.
//!
//! ```
//! let o = vene_testutil::oracle("gpt2");
//! let logits = vene_testutil::get(&o, "gpt2.base_logits");
//! assert_eq!(vene_testutil::max_abs_diff(&logits, &logits), 0.0);
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod fuzz;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

/// The folder of the pyvene-made fixtures: `tests/fixtures/pyvene` of the workspace.
pub const PYVENE_FIXTURES: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/pyvene");

/// The folder of the pyvene-made fixtures of the other decoder families (Gemma, Gemma 2,
/// Mistral, Qwen2, Qwen3, GPT-NeoX, GPT-Neo, OLMo, OLMo 2): `tests/fixtures/pyvene-families`.
pub const FAMILY_FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/pyvene-families"
);

/// The families of [`FAMILY_FIXTURES`] (`gpt_neox_sequential` is GPT-NeoX with a sequential
/// residual).
pub const FAMILY_NAMES: [&str; 10] = [
    "gpt_neo",
    "gpt_neox",
    "gpt_neox_sequential",
    "mistral",
    "gemma",
    "gemma2",
    "qwen2",
    "qwen3",
    "olmo",
    "olmo2",
];

/// The oracle tensors pyvene computed for `family` (`"gemma2"`, `"gpt_neox"`, ...).
pub fn family_oracle(family: &str) -> HashMap<String, Tensor> {
    load_tensors(Path::new(FAMILY_FIXTURES).join(format!("oracle_{family}.safetensors")))
}

/// `max |a - b|` over the rows whose `mask` (`[B, T]`, 0/1) is 1, for `a`, `b` of shape
/// `[B, T, ...]`, computed in f32.
pub fn masked_max_abs_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let (bsz, t) = mask.dims2().unwrap();
    let m = mask.to_dtype(DType::F32).unwrap().to_vec2::<f32>().unwrap();
    let mut worst = 0f32;
    for (i, row) in m.iter().enumerate().take(bsz) {
        for (j, &keep) in row.iter().enumerate().take(t) {
            if keep != 0.0 {
                let x = a.get(i).unwrap().get(j).unwrap();
                let y = b.get(i).unwrap().get(j).unwrap();
                worst = worst.max(max_abs_diff(&x, &y));
            }
        }
    }
    worst
}

/// [`assert_intervened`] over the positions whose base `mask` is 1.
pub fn assert_intervened_masked(
    what: &str,
    ours: &Tensor,
    expected: &Tensor,
    base: &Tensor,
    mask: &Tensor,
) {
    let d = masked_max_abs_diff(ours, expected, mask);
    assert!(
        d <= 1e-5,
        "{what}: max abs diff {d} > 1e-5 at real positions"
    );
    let ours_delta = (ours - base).unwrap();
    let exp_delta = (expected - base).unwrap();
    let zeros = exp_delta.zeros_like().unwrap();
    let scale = masked_max_abs_diff(&exp_delta, &zeros, mask);
    assert!(
        scale > 0.0,
        "{what}: the fixture's intervention changes nothing"
    );
    let dd = masked_max_abs_diff(&ours_delta, &exp_delta, mask);
    assert!(
        dd <= 0.02 * scale,
        "{what}: delta differs by {dd}, 2% of the fixture's delta {scale} is {}",
        0.02 * scale
    );
}

/// The workspace's `tests/fixtures` folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"))
}

/// `rel` inside the pyvene fixtures folder ([`PYVENE_FIXTURES`]).
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(PYVENE_FIXTURES).join(rel)
}

/// Every tensor of a safetensors file, on the CPU.
pub fn load_tensors(path: impl AsRef<Path>) -> HashMap<String, Tensor> {
    let path = path.as_ref();
    candle_core::safetensors::load(path, &Device::Cpu)
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", path.display()))
}

/// The oracle tensors pyvene computed for `model` (`"gpt2"` or `"llama"`), named as in
/// `manifest.json` (`gpt2.base_logits`, ...).
pub fn oracle(model: &str) -> HashMap<String, Tensor> {
    load_tensors(fixture(&format!("oracle_{model}.safetensors")))
}

/// The tensor `key` of `tensors` (an oracle), panicking with its name when absent.
pub fn get(tensors: &HashMap<String, Tensor>, key: &str) -> Tensor {
    tensors
        .get(key)
        .unwrap_or_else(|| panic!("oracle has no {key}"))
        .clone()
}

/// The environment variable naming the device tests run on: `cpu` (the default), `cuda`,
/// `cuda:N`, `metal`, `metal:N`. `scripts/gpu-check.sh` sets it to `cuda`.
pub const TEST_DEVICE_ENV: &str = "VENE_TEST_DEVICE";

/// The device tests run on, from [`TEST_DEVICE_ENV`] (default: the CPU). Panics, naming the
/// variable, when the device cannot be opened (e.g. `cuda` in a build without the feature).
///
/// ```
/// if std::env::var_os(vene_testutil::TEST_DEVICE_ENV).is_none() {
///     assert!(vene_testutil::device().is_cpu());
/// }
/// ```
pub fn device() -> Device {
    let spec = std::env::var(TEST_DEVICE_ENV).unwrap_or_default();
    let spec = spec.trim().to_ascii_lowercase();
    let (name, ordinal) = match spec.split_once(':') {
        Some((n, i)) => (
            n,
            i.parse::<usize>()
                .unwrap_or_else(|_| panic!("{TEST_DEVICE_ENV}={spec}: bad device number")),
        ),
        None => (spec.as_str(), 0),
    };
    let device = match name {
        "" | "cpu" => Ok(Device::Cpu),
        "cuda" => Device::new_cuda(ordinal),
        "metal" => Device::new_metal(ordinal),
        other => panic!("{TEST_DEVICE_ENV}={other}: expected cpu, cuda[:N] or metal[:N]"),
    };
    device.unwrap_or_else(|e| panic!("{TEST_DEVICE_ENV}={spec}: cannot open the device: {e}"))
}

/// `max |a|` over every element, computed in f32 (on the CPU, wherever `a` lives).
pub fn max_abs(a: &Tensor) -> f32 {
    a.to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
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

/// `max |a - b|` over every element, computed in f32; `a` and `b` must have the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes differ");
    let a = a
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    let b = b
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap();
    max_abs(&(a - b).unwrap())
}

/// Checks an intervened output against pyvene's: within 1e-5 of `expected`, and
/// `(ours - base)` within 2% (of the largest entry of `expected - base`) of
/// `(expected - base)`, which must not be zero (the fixture's intervention must change
/// something).
pub fn assert_intervened(what: &str, ours: &Tensor, expected: &Tensor, base: &Tensor) {
    let d = max_abs_diff(ours, expected);
    assert!(d <= 1e-5, "{what}: max abs diff {d} > 1e-5");
    let cpu = |t: &Tensor| t.to_device(&Device::Cpu).unwrap();
    let (ours, expected, base) = (cpu(ours), cpu(expected), cpu(base));
    let ours_delta = (&ours - &base).unwrap();
    let exp_delta = (&expected - &base).unwrap();
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
