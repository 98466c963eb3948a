//! Compiles kernels/masked_swap.cu to PTX with nvcc, only when the `cuda` feature is on.
//!
//! Honours `NVCC` (the compiler; else `$CUDA_HOME/bin/nvcc`, else `nvcc` on PATH) and
//! `CUDA_COMPUTE_CAP` (e.g. `80`, `90`; else the first GPU's, from nvidia-smi; else 80).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=kernels/masked_swap.cu");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_HOME");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let ptx = out_dir.join("masked_swap.ptx");
    let nvcc = nvcc();
    let cap = compute_cap();
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17"])
        .arg(format!("-arch=sm_{cap}"))
        .arg("-o")
        .arg(&ptx)
        .arg("kernels/masked_swap.cu")
        .status()
        .unwrap_or_else(|e| panic!("vene-kernels: cannot run nvcc ({}): {e}", nvcc.display()));
    if !status.success() {
        panic!("vene-kernels: nvcc failed on kernels/masked_swap.cu ({status})");
    }
}

fn nvcc() -> PathBuf {
    if let Some(p) = std::env::var_os("NVCC") {
        return PathBuf::from(p);
    }
    if let Some(home) = std::env::var_os("CUDA_HOME") {
        let p = PathBuf::from(home).join("bin").join("nvcc");
        if p.exists() {
            return p;
        }
    }
    PathBuf::from("nvcc")
}

fn compute_cap() -> String {
    if let Ok(cap) = std::env::var("CUDA_COMPUTE_CAP") {
        let cap = cap.trim().replace('.', "");
        if !cap.is_empty() {
            return cap;
        }
    }
    let smi = Command::new("nvidia-smi")
        .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
        .output();
    if let Ok(out) = smi {
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(first) = text.lines().next() {
                let cap = first.trim().replace('.', "");
                if !cap.is_empty() {
                    return cap;
                }
            }
        }
    }
    println!("cargo:warning=vene-kernels: CUDA_COMPUTE_CAP not set and no GPU found; using sm_80");
    "80".to_string()
}
