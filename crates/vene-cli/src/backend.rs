//! `--device` and `--dtype`: where the commands and examples run, and in what precision.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device};

use crate::{CliError, Result};

/// A device named on the command line: `cpu`, `cuda`, `cuda:N`, `metal`, `metal:N`.
///
/// ```
/// use vene_cli::backend::DeviceSpec;
/// assert_eq!("cuda:1".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(1));
/// assert_eq!("cpu".parse::<DeviceSpec>().unwrap().to_string(), "cpu");
/// assert!("tpu".parse::<DeviceSpec>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The CPU.
    #[default]
    Cpu,
    /// CUDA device `N` (ordinal).
    Cuda(usize),
    /// Metal device `N`.
    Metal(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        let (name, ordinal) = match s.split_once(':') {
            Some((n, i)) => {
                let i = i.parse::<usize>().map_err(|_| {
                    format!("device {s:?}: the part after `:` must be a device number")
                })?;
                (n, i)
            }
            None => (s.as_str(), 0),
        };
        match name {
            "cpu" if !s.contains(':') => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(ordinal)),
            "metal" | "mps" => Ok(DeviceSpec::Metal(ordinal)),
            _ => Err(format!(
                "unknown device {s:?}: expected cpu, cuda, cuda:N, metal or metal:N"
            )),
        }
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceSpec::Metal(i) => write!(f, "metal:{i}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device, with a clear error when this binary was built without its backend
    /// (naming the cargo feature to turn on) or the device cannot be opened.
    pub fn open(&self) -> Result<Device> {
        let (backend, feature, built) = match self {
            DeviceSpec::Cpu => return Ok(Device::Cpu),
            DeviceSpec::Cuda(_) => ("CUDA", "cuda", candle_core::utils::cuda_is_available()),
            DeviceSpec::Metal(_) => ("Metal", "metal", candle_core::utils::metal_is_available()),
        };
        if !built {
            return Err(CliError::invalid(format!(
                "--device {self}: this vene was built without {backend} support; rebuild with \
                 `--features {feature}` (e.g. `cargo install vene-cli --features {feature}`)"
            )));
        }
        let device = match self {
            DeviceSpec::Cuda(i) => Device::new_cuda(*i),
            DeviceSpec::Metal(i) => Device::new_metal(*i),
            DeviceSpec::Cpu => Ok(Device::Cpu),
        };
        device.map_err(|e| CliError::invalid(format!("--device {self}: cannot open it: {e}")))
    }
}

/// Parses `f32`, `f16`, `bf16` (also `float32`, `float16`, `bfloat16`, `half`).
///
/// ```
/// use candle_core::DType;
/// assert_eq!(vene_cli::backend::parse_dtype("bf16"), Ok(DType::BF16));
/// assert!(vene_cli::backend::parse_dtype("int8").is_err());
/// ```
pub fn parse_dtype(s: &str) -> std::result::Result<DType, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "f32" | "float32" | "float" => Ok(DType::F32),
        "f16" | "float16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(format!(
            "unknown dtype {other:?}: expected f32, f16 or bf16"
        )),
    }
}

/// `--device`, `--dtype` and `--sae-dtype`, shared by every command and example that loads a
/// model (flattened into their arguments).
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct BackendArgs {
    /// Device: cpu, cuda, cuda:N, metal, metal:N (cuda and metal need a binary built with
    /// that cargo feature).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceSpec,
    /// Precision of the model's weights and activations: f32, f16, bf16.
    #[arg(long, default_value = "f32", value_parser = parse_dtype)]
    pub dtype: DType,
    /// Precision the SAE computes in (default: --dtype); e.g. `--dtype bf16 --sae-dtype f32`.
    #[arg(long, value_parser = parse_dtype)]
    pub sae_dtype: Option<DType>,
}

impl Default for BackendArgs {
    fn default() -> Self {
        Self {
            device: DeviceSpec::Cpu,
            dtype: DType::F32,
            sae_dtype: None,
        }
    }
}

/// An opened [`BackendArgs`]: the device and the two dtypes.
#[derive(Debug, Clone)]
pub struct Backend {
    /// The device everything runs on.
    pub device: Device,
    /// The model's dtype.
    pub dtype: DType,
    /// The SAE's dtype.
    pub sae_dtype: DType,
}

impl BackendArgs {
    /// Opens the device ([`DeviceSpec::open`]).
    pub fn open(&self) -> Result<Backend> {
        Ok(Backend {
            device: self.device.open()?,
            dtype: self.dtype,
            sae_dtype: self.sae_dtype.unwrap_or(self.dtype),
        })
    }
}

impl Backend {
    /// The CPU in f32 (what the commands used before `--device` existed).
    pub fn cpu() -> Self {
        Self {
            device: Device::Cpu,
            dtype: DType::F32,
            sae_dtype: DType::F32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse_and_print() {
        for (text, spec) in [
            ("cpu", DeviceSpec::Cpu),
            ("CUDA", DeviceSpec::Cuda(0)),
            ("cuda:3", DeviceSpec::Cuda(3)),
            ("metal", DeviceSpec::Metal(0)),
            ("metal:1", DeviceSpec::Metal(1)),
        ] {
            assert_eq!(text.parse::<DeviceSpec>(), Ok(spec), "{text}");
        }
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
        for bad in ["cuda:x", "cpu:1", "tpu", ""] {
            assert!(bad.parse::<DeviceSpec>().is_err(), "{bad}");
        }
        assert_eq!(parse_dtype("F16"), Ok(DType::F16));
        assert_eq!(parse_dtype("float32"), Ok(DType::F32));
        assert!(parse_dtype("f64").is_err());
    }

    #[test]
    fn cpu_opens_and_missing_backends_say_which_feature() {
        assert!(DeviceSpec::Cpu.open().unwrap().is_cpu());
        if !candle_core::utils::cuda_is_available() {
            let e = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
            assert!(
                e.contains("without CUDA support") && e.contains("--features cuda"),
                "{e}"
            );
        }
        if !candle_core::utils::metal_is_available() {
            let e = DeviceSpec::Metal(0).open().unwrap_err().to_string();
            assert!(e.contains("--features metal"), "{e}");
        }
    }
}
