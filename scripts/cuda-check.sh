#!/usr/bin/env bash
# CI compile check of the whole workspace with CUDA on, on a machine without a GPU.
#
# Installs a CUDA toolkit (nvcc, cccl, cudart) from PyPI into a cache outside the repo
# (once; later runs reuse it), then runs `cargo check --workspace --all-targets --features
# cuda`: every crate with a `cuda` feature (vene, vene-cli, vene-kernels) turns it on, which
# compiles candle's CUDA backend (cudarc, candle-kernels' PTX) and runs vene-kernels'
# build.rs nvcc step on kernels/masked_swap.cu. Linking CUDA test binaries needs the driver
# libraries, so the CUDA path is checked, not run, here (scripts/gpu-check.sh runs it).
# Cost: 1296 s cold on the shared 2-core dev VM under load (2026-12-01), most of it nvcc
# compiling candle-kernels' PTX (quantized matmul instances); cached runs only re-check vene.
#
# Env: VENE_CUDA_CACHE (default $HOME/.cache/vene), CUDA_COMPUTE_CAP (default 80).
set -euo pipefail
cd "$(dirname "$0")/.."

# The same toolkit (and cache) as scripts/gpu-check.sh build: CUDA 13.0 with nvvm/crt pinned.
CACHE="${VENE_CUDA_CACHE:-$HOME/.cache/vene}"
TOOLKIT_VERSION="13.0.2"
CUDA_HOME="$CACHE/cuda-toolkit-13.0/nvidia/cu13"

if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
    echo "cuda-check: installing cuda-toolkit $TOOLKIT_VERSION into $CACHE/cuda-toolkit-13.0"
    mkdir -p "$CACHE"
    python3 -m pip install --quiet --disable-pip-version-check \
        --target "$CACHE/cuda-toolkit-13.0" "cuda-toolkit[nvcc,cccl,cudart]==$TOOLKIT_VERSION" \
        "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*"
else
    echo "cuda-check: using cached toolkit $CUDA_HOME"
fi

export CUDA_HOME
export PATH="$CUDA_HOME/bin:$PATH"
export NVCC="$CUDA_HOME/bin/nvcc"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"

"$NVCC" --version | tail -n 1
start=$(date +%s)
cargo check --workspace --all-targets --features cuda
echo "cuda-check: passed in $(( $(date +%s) - start )) s (cargo check, sm_$CUDA_COMPUTE_CAP)"
