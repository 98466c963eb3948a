#!/usr/bin/env bash
# One-call GPU check of vene-kernels (about 10 minutes on an H100/H200 machine):
#   1. finds nvcc (NVCC, PATH, /usr/local/cuda, the vene cache) or installs the CUDA
#      toolkit from PyPI into the cache, like scripts/cuda-check.sh;
#   2. sets CUDA_COMPUTE_CAP from nvidia-smi;
#   3. runs tests/cuda.rs (the kernels against the CPU op, exact, all dtypes, odd shapes);
#   4. runs the CUDA masked swap benches briefly and prints a table last.
# Env: VENE_CUDA_CACHE (toolkit cache), VENE_GPU_BENCH=0 to skip the benches.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${VENE_CUDA_CACHE:-$HOME/.cache/vene/cuda-toolkit}"
TOOLKIT_VERSION="13.4.3"

nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader
if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
    CUDA_COMPUTE_CAP="$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -n 1 | tr -d ' .')"
fi
export CUDA_COMPUTE_CAP

if [ -z "${NVCC:-}" ]; then
    if command -v nvcc >/dev/null 2>&1; then
        NVCC="$(command -v nvcc)"
    elif [ -x /usr/local/cuda/bin/nvcc ]; then
        NVCC=/usr/local/cuda/bin/nvcc
    else
        if [ ! -x "$CACHE/nvidia/cu13/bin/nvcc" ]; then
            echo "gpu-check: no nvcc; installing cuda-toolkit $TOOLKIT_VERSION into $CACHE"
            python3 -m pip install --quiet --disable-pip-version-check --target "$CACHE" \
                "cuda-toolkit[nvcc,cccl,cudart]==$TOOLKIT_VERSION"
        fi
        NVCC="$CACHE/nvidia/cu13/bin/nvcc"
        export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13040}"
        export LD_LIBRARY_PATH="$CACHE/nvidia/cu13/lib:${LD_LIBRARY_PATH:-}"
    fi
fi
CUDA_HOME="$(cd "$(dirname "$NVCC")/.." && pwd)"
export NVCC CUDA_HOME PATH="$CUDA_HOME/bin:$PATH"
"$NVCC" --version | tail -n 1
echo "gpu-check: sm_$CUDA_COMPUTE_CAP, nvcc $NVCC"

start=$(date +%s)
# Release profile for both, so the benches reuse the test build.
cargo test -p vene-kernels --features cuda --release --test cuda -- --test-threads 1
echo "gpu-check: kernel tests passed ($(( $(date +%s) - start )) s so far)"

if [ "${VENE_GPU_BENCH:-1}" != "0" ]; then
    cargo bench -p vene-kernels --features cuda --bench masked_swap -- 'cuda/' \
        --warm-up-time 0.3 --measurement-time 1 --noplot
    echo
    echo "## masked swap, $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
    python3 scripts/masked_swap_table.py "${CARGO_TARGET_DIR:-target}" cuda/
fi
echo "gpu-check: done in $(( $(date +%s) - start )) s"
