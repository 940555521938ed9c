#!/usr/bin/env bash
# Every GPU measurement of the throughput example in one run of a few minutes, on one CUDA
# machine without a Rust toolchain:
#   here:  .ci/gpu-report.sh build          # builds, strips and compresses into gpu-bin/
#   there: .ci/gpu-report.sh run [OUTDIR]   # with gpu-bin/ and tests/fixtures/ beside it
# `run` writes OUTDIR (default gpu-report/): f32.txt (parity against upstream's outputs, cold and
# warm time per stage, ms/image at batch 1 and 8), second_process.txt (cold start of a second
# process, compilation caches warm), f16.txt, bf16.txt, gemm.txt, and memory.csv (GPU memory used,
# sampled every 200 ms). Set CUDA_LIB to the folder holding libnvrtc if it is not on the library path.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
build)
    cargo build --release --features cuda --example throughput
    mkdir -p gpu-bin
    strip -o gpu-bin/throughput target/release/examples/throughput
    xz -9 -f gpu-bin/throughput
    ls -l gpu-bin
    ;;
run)
    out="${2:-gpu-report}"
    mkdir -p "$out"
    if [ -n "${CUDA_LIB:-}" ]; then export LD_LIBRARY_PATH="$CUDA_LIB:${LD_LIBRARY_PATH:-}"; fi
    export HYPERSTYLE_FIXTURES="$PWD/tests/fixtures"
    bin=gpu-bin/throughput
    [ -x "$bin" ] || { xz -dkf "$bin.xz"; chmod +x "$bin"; }
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$out/memory.csv" &
    smi=$!
    trap 'kill "$smi" 2>/dev/null || true' EXIT
    nvidia-smi >"$out/device.txt" 2>&1 || true
    timeout 300 "$bin" --profile --batches 1,8 --runs 3 >"$out/f32.txt" 2>&1 || echo "f32: exit $?" >>"$out/f32.txt"
    timeout 120 "$bin" --no-check --profile --batches 1 --runs 1 >"$out/second_process.txt" 2>&1 || true
    for precision in f16 bf16; do
        timeout 120 "$bin" --precision "$precision" --batches 1,8 --runs 3 >"$out/$precision.txt" 2>&1 || true
    done
    timeout 120 "$bin" --no-check --conv gemm --batches 1,8 --runs 3 >"$out/gemm.txt" 2>&1 || true
    ;;
*)
    echo "usage: $0 build | run [OUTDIR]" >&2
    exit 2
    ;;
esac
