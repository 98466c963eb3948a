#!/usr/bin/env bash
# GPU check of vene: the test suite with the tests' device switched to CUDA
# (VENE_TEST_DEVICE=cuda, read by vene-testutil), the CUDA kernels against the CPU op and
# against the candle fallback (exact, all dtypes, odd shapes), then the criterion benches,
# with one table printed last.
#
# The GPU machines lent to this project have CUDA (driver, nvcc 13.0, the CUDA libraries that
# PyTorch ships) but no Rust toolchain and no network. So the check is in two steps:
#
#   scripts/gpu-check.sh build   # HERE (no GPU needed): builds the CUDA test and bench binaries
#                                # into .gpu-check/ (git-ignored; one solid .tar.xz), ready to carry
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
#   builds for sm_90 (H100/H200) with `vene/cuda` (candle's CUDA backend + the fused kernel),
#   strips the binaries and packs them into one xz archive (the binaries share most of their
#   code and candle's PTX, so a solid archive stays in the tens of MB).
# run: preloads the real CUDA libraries (found under PyTorch's nvidia/ packages, or
#   CUDA_LIB_DIRS), runs every test binary with VENE_TEST_DEVICE=cuda, the kernel tests again
#   with VENE_KERNELS=fallback, then the benches briefly, and prints the tables.
# Env: VENE_CUDA_CACHE (default $HOME/.cache/vene), VENE_GPU_BENCH=0 skips the benches,
#   VENE_GPU_TESTS (build: space-separated `package:test` targets, default below).
set -euo pipefail
cd "$(dirname "$0")/.."

OUT_DIR=.gpu-check
CACHE="${VENE_CUDA_CACHE:-$HOME/.cache/vene}"
TOOLKIT_VERSION="13.0.2"
# The test targets carried (package:test). The fixture suites of every crate, the device
# tests and the kernels; each binary runs with the tests' device set to CUDA.
DEFAULT_TESTS="vene-kernels:cuda vene-kernels:fallback vene-kernels:properties vene-kernels:grad
vene-autoencoder:device_move vene-autoencoder:loaders vene-autoencoder:pyvene_fixtures
vene-interventions:device_move vene-interventions:autoencoder vene-interventions:localist
vene-models:fixtures vene:devices vene:pyvene_fixtures vene:api"
# The benches carried (package:bench).
BENCHES="vene-kernels:masked_swap vene-autoencoder:autoencoder vene:intervened_forward"

# Prints the executables cargo built (JSON on stdin) of package $1, target kind $2
# (test|bench), named $3.
executables() {
    python3 -c 'import json,sys
pkg, kind, name = sys.argv[1:4]
for l in sys.stdin:
    m = json.loads(l)
    t = m.get("target") or {}
    pid = m.get("package_id", "")
    ours = pid.startswith(pkg + " ") or ("/" + pkg + "#") in pid
    if m.get("reason") == "compiler-artifact" and m.get("executable") and ours and t.get("name") == name and kind in t.get("kind", []):
        print(m["executable"])' "$1" "$2" "$3"
}

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
    # vene/cuda turns on candle's CUDA backend for the whole build and the fused kernel.
    local features=(--features vene/cuda)
    local staging="$OUT_DIR/staging" target pkg name exe
    rm -rf "$OUT_DIR" && mkdir -p "$staging/tests" "$staging/benches"
    for target in ${VENE_GPU_TESTS:-$DEFAULT_TESTS}; do
        pkg="${target%%:*}" name="${target##*:}"
        exe=$(cargo test -p "$pkg" -p vene "${features[@]}" --release --test "$name" --no-run "${msg[@]}" |
            executables "$pkg" test "$name" | tail -n 1)
        [ -n "$exe" ] || { echo "gpu-check: no test binary for $target" >&2; exit 1; }
        strip -o "$staging/tests/$pkg--$name" "$exe"
    done
    for target in $BENCHES; do
        pkg="${target%%:*}" name="${target##*:}"
        exe=$(cargo bench -p "$pkg" -p vene "${features[@]}" --bench "$name" --no-run "${msg[@]}" |
            executables "$pkg" bench "$name" | tail -n 1)
        [ -n "$exe" ] || { echo "gpu-check: no bench binary for $target" >&2; exit 1; }
        strip -o "$staging/benches/$name" "$exe"
    done
    cp scripts/masked_swap_table.py scripts/bench_table.py "$staging/"
    # The tests read tests/fixtures by the absolute path of this checkout (run links it).
    pwd > "$staging/built_in"
    tar -C "$staging" -cf - . | xz -T0 -9e > "$OUT_DIR/payload.tar.xz"
    rm -rf "$staging"
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
    [ -f "$OUT_DIR/payload.tar.xz" ] || { echo "gpu-check: run 'scripts/gpu-check.sh build' first (here), then carry $OUT_DIR" >&2; exit 1; }
    nvidia-smi --query-gpu=name,compute_cap,driver_version --format=csv,noheader
    local dir built_in
    dir=$(mktemp -d)
    python3 -c 'import lzma, sys, tarfile
with lzma.open(sys.argv[1]) as f: tarfile.open(fileobj=f).extractall(sys.argv[2])' \
        "$OUT_DIR/payload.tar.xz" "$dir"
    # The test binaries read tests/fixtures under the absolute path of the build checkout:
    # make that path lead to this checkout.
    built_in=$(cat "$dir/built_in")
    if [ ! -d "$built_in/tests/fixtures" ] && [ ! -e "$built_in" ]; then
        mkdir -p "$(dirname "$built_in")" && ln -s "$(pwd)" "$built_in"
    fi
    cuda_preload
    local start failed=0 t
    start=$(date +%s)
    export VENE_TEST_DEVICE=cuda
    for t in "$dir"/tests/*; do
        echo "== $(basename "$t") (VENE_TEST_DEVICE=cuda)"
        "$t" --test-threads 4 || failed=$((failed + 1))
    done
    for t in "$dir"/tests/vene-kernels--*; do
        echo "== $(basename "$t") (VENE_KERNELS=fallback)"
        VENE_KERNELS=fallback "$t" --test-threads 4 || failed=$((failed + 1))
    done
    echo "gpu-check: tests done in $(($(date +%s) - start)) s, $failed binaries failed"
    if [ "${VENE_GPU_BENCH:-1}" != "0" ]; then
        export CARGO_TARGET_DIR="$dir/target"
        local crit=(--warm-up-time 0.3 --measurement-time 1 --noplot)
        "$dir/benches/masked_swap" --bench 'cuda/' "${crit[@]}"
        "$dir/benches/autoencoder" --bench "${crit[@]}"
        "$dir/benches/intervened_forward" --bench "${crit[@]}"
        VENE_BENCH_DTYPE=bf16 "$dir/benches/intervened_forward" --bench "${crit[@]}"
        local gpu table="${OUT:-$OUT_DIR}/gpu_tables.md"
        gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n 1)
        {
            echo "## masked swap, $gpu"
            python3 "$dir/masked_swap_table.py" "$CARGO_TARGET_DIR" cuda/
            echo
            echo "## SAE and forward, $gpu"
            python3 "$dir/bench_table.py" "$CARGO_TARGET_DIR" autoencoder_cuda intervened_forward/
        } | tee "$table"
    fi
    echo "gpu-check: done in $(($(date +%s) - start)) s"
    [ "$failed" -eq 0 ]
}

case "${1:-all}" in
build) build ;;
run) run ;;
all) build && run ;;
*) echo "usage: scripts/gpu-check.sh [build|run]" >&2; exit 2 ;;
esac
