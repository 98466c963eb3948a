#!/usr/bin/env bash
# GPU check of vene-kernels: the CUDA kernels against the CPU op (exact, all dtypes, odd
# shapes) and the CUDA masked-swap benches, with a table printed last.
#
# The GPU machines lent to this project have CUDA (driver, nvcc 13.0, the CUDA libraries that
# PyTorch ships) but no Rust toolchain and no network. So the check is in two steps:
#
#   scripts/gpu-check.sh build   # HERE (no GPU needed): builds the CUDA test and bench binaries
#                                # into .gpu-check/ (git-ignored), ready to carry
#   scripts/gpu-check.sh run     # THERE: runs them, prints the table
#
# With the device tool, the second step is one call:
#   run(command="bash scripts/gpu-check.sh run", carry=[".gpu-check"], timeout_s=500)
# On a machine that has both cargo and a GPU, `scripts/gpu-check.sh` alone does both.
#
# build: installs a CUDA 13.0 toolkit (nvcc, cccl, cudart, with nvvm and crt pinned to 13.0
#   too: the driver there is CUDA 13.0, and PTX from a newer nvvm would not load) from PyPI
#   into a cache outside the repo, makes empty link stubs for libcuda/libcudart/libcublas/libcublasLt/
#   libcurand/libnvrtc (cudarc links them; the real ones are preloaded on the GPU machine),
#   and builds for sm_90 (H100/H200).
# run: preloads the real CUDA libraries (found under PyTorch's nvidia/ packages, or
#   CUDA_LIB_DIRS), runs the tests single-threaded, then the benches briefly.
# Env: VENE_CUDA_CACHE (default $HOME/.cache/vene), VENE_GPU_BENCH=0 skips the benches.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT_DIR=.gpu-check
CACHE="${VENE_CUDA_CACHE:-$HOME/.cache/vene}"
TOOLKIT_VERSION="13.0.2"

build() {
    local tk="$CACHE/cuda-toolkit-13.0/nvidia/cu13" stubs="$CACHE/cuda-stubs"
    if [ ! -x "$tk/bin/nvcc" ]; then
        echo "gpu-check: installing cuda-toolkit $TOOLKIT_VERSION into $CACHE/cuda-toolkit-13.0"
        python3 -m pip install --quiet --disable-pip-version-check \
            --target "$CACHE/cuda-toolkit-13.0" "cuda-toolkit[nvcc,cccl,cudart]==$TOOLKIT_VERSION" \
            "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*"
    fi
    mkdir -p "$stubs"
    : > "$stubs/stub.c"
    for lib in cuda:1 cudart:13 cublas:13 cublasLt:13 curand:10 nvrtc:13; do
        name="${lib%%:*}" major="${lib##*:}"
        [ -f "$stubs/lib$name.so" ] ||
            gcc -shared -fPIC -o "$stubs/lib$name.so" "$stubs/stub.c" -Wl,-soname,"lib$name.so.$major"
    done
    export CUDA_HOME="$tk" PATH="$tk/bin:$PATH" NVCC="$tk/bin/nvcc"
    export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" CUDARC_CUDA_VERSION=13000
    export RUSTFLAGS="-L native=$stubs -C link-arg=-Wl,--unresolved-symbols=ignore-all"
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/gpu-check}"
    local msg=(--message-format=json-render-diagnostics)
    local test_bin bench_bin
    test_bin=$(cargo test -p vene-kernels --features cuda --release --test cuda --no-run "${msg[@]}" |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "cuda": print(m["executable"])')
    bench_bin=$(cargo bench -p vene-kernels --features cuda --bench masked_swap --no-run "${msg[@]}" |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "masked_swap": print(m["executable"])')
    rm -rf "$OUT_DIR" && mkdir -p "$OUT_DIR"
    # xz: the embedded PTX compresses ~8x, which keeps the carried folder far under 64 MiB
    for pair in "$test_bin:kernels-cuda-test" "$bench_bin:masked-swap-bench"; do
        strip -o "$OUT_DIR/${pair##*:}" "${pair%%:*}"
        xz -T0 -6 "$OUT_DIR/${pair##*:}"
    done
    cp scripts/masked_swap_table.py "$OUT_DIR/"
    ls -l "$OUT_DIR"
    echo "gpu-check: built for sm_$CUDA_COMPUTE_CAP; carry $OUT_DIR and run 'scripts/gpu-check.sh run' on the GPU machine"
}

cuda_preload() {
    # The real libraries the binaries were linked against (by soname), from CUDA_LIB_DIRS or
    # PyTorch's nvidia/ wheels, and the driver's libcuda.
    local dirs="${CUDA_LIB_DIRS:-}"
    if [ -z "$dirs" ]; then
        dirs=$(python3 -c 'import glob,os,sys
roots = [p for p in sys.path if os.path.isdir(os.path.join(p, "nvidia"))]
print(":".join(sorted({os.path.dirname(f) for r in roots for f in glob.glob(os.path.join(r, "nvidia", "**", "lib*.so*"), recursive=True)})))' 2>/dev/null || true)
    fi
    local preload="" so found
    for so in libcuda.so.1 libcudart.so.13 libnvrtc.so.13 libcublasLt.so.13 libcublas.so.13 libcurand.so.10; do
        found=$( (IFS=:; for d in $dirs /usr/lib/x86_64-linux-gnu /usr/local/nvidia/lib64 /usr/local/cuda/lib64; do
            [ -e "$d/$so" ] && { echo "$d/$so"; break; }; done) || true)
        [ -n "$found" ] || found=$(ldconfig -p | awk -v s="$so" '$1 == s {print $NF; exit}')
        [ -n "$found" ] || { echo "gpu-check: $so not found (set CUDA_LIB_DIRS)" >&2; exit 1; }
        preload="${preload:+$preload:}$found"
    done
    export LD_LIBRARY_PATH="$dirs:${LD_LIBRARY_PATH:-}"
    export LD_PRELOAD="$preload"
}

run() {
    [ -f "$OUT_DIR/kernels-cuda-test.xz" ] || { echo "gpu-check: run 'scripts/gpu-check.sh build' first (here), then carry $OUT_DIR" >&2; exit 1; }
    nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader
    local bin_dir
    bin_dir=$(mktemp -d)
    for name in kernels-cuda-test masked-swap-bench; do
        python3 -c 'import lzma, shutil, sys
with lzma.open(sys.argv[1]) as src, open(sys.argv[2], "wb") as dst: shutil.copyfileobj(src, dst)' \
            "$OUT_DIR/$name.xz" "$bin_dir/$name"
        chmod +x "$bin_dir/$name"
    done
    cuda_preload
    local start
    start=$(date +%s)
    "$bin_dir/kernels-cuda-test" --test-threads 1
    echo "gpu-check: kernel tests passed ($(($(date +%s) - start)) s)"
    if [ "${VENE_GPU_BENCH:-1}" != "0" ]; then
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
        "$bin_dir/masked-swap-bench" --bench 'cuda/' --warm-up-time 0.3 --measurement-time 1 --noplot
        echo
        echo "## masked swap, $(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)"
        python3 "$OUT_DIR/masked_swap_table.py" "$CARGO_TARGET_DIR" cuda/ | tee "${OUT:-$OUT_DIR}/masked_swap_table.md"
    fi
    echo "gpu-check: done in $(($(date +%s) - start)) s"
}

case "${1:-all}" in
build) build ;;
run) run ;;
all) build && run ;;
*) echo "usage: scripts/gpu-check.sh [build|run]" >&2; exit 2 ;;
esac
