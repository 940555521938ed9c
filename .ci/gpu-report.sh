#!/usr/bin/env bash
# Every GPU measurement of the throughput example in one run of under 10 minutes, on one CUDA
# machine without a Rust toolchain:
#   here:  .ci/gpu-report.sh build          # builds, strips and compresses into gpu-bin/
#   there: .ci/gpu-report.sh run [OUTDIR]   # with gpu-bin/ and tests/fixtures/ beside it
# Three binaries: `throughput` (fixed kernels, the default build), `throughput-autotune`
# (`--features autotune`) and `gpu_kernels` (the kernel tests, CUDA part: tensor cores in TF32
# and f16 against the CPU). `run` writes OUTDIR (default gpu-report/):
#   kernels.txt         the kernel tests, every case's error and share of its allowance
#   cold.txt            a first process on empty caches: time per stage of the first (cold) and
#                       second (warm) inversion, with kernels compiled / shapes autotuned per stage
#   second_process.txt  the same in a second process on the caches the first one filled
#   f32.txt             parity against upstream's outputs; time per stage; ms/image at batch 1, 8
#   f16.txt, bf16.txt   half precisions on the tensor cores (parity against the goldens, timing)
#   tf32.txt            f32 tensors with TF32 tensor-core products (parity, timing)
#   autotune_cold.txt, autotune_second.txt   the autotuned build, fresh caches then warm caches
#   memory.csv          GPU memory used, sampled every 200 ms
# The caches live in a fresh temporary folder per build. Set CUDA_LIB to the folder
# holding libnvrtc if it is not on the library path.
# With CUDA_PATH set for `build` (CUDA headers under $CUDA_PATH/include, libnvrtc on the library
# path, and a Vulkan driver for wgpu, software is enough), `build` first checks that every kernel
# variant's CUDA source compiles under NVRTC for sm_80 / sm_89 / sm_90a; no GPU is needed.
#
# Side by side with the upstream PyTorch implementation on the same GPU: set UPSTREAM_SRC (an
# upstream checkout) and UPSTREAM_BENCH (a timing script printing the JSON lines described in
# benches/side_by_side.sh; Python modules beside it travel with it) for `build`, which packs
# both into gpu-bin/upstream.tar.xz. `run` then times upstream with its own JIT-compiled CUDA ops
# (upstream_jit.txt; needs ninja and a compiler there) and with plain-PyTorch equivalents
# (upstream_native.txt), this project in the same run (ours.json), and writes side_by_side.md.
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
build)
    mkdir -p gpu-bin
    if [ -n "${CUDA_PATH:-}" ]; then
        cargo test --release -p hyperstyle-kernels --features cuda,wgpu --lib cuda_source
    fi
    cargo build --release --features cuda,autotune --example throughput
    strip -o gpu-bin/throughput-autotune target/release/examples/throughput
    cargo build --release --features cuda --example throughput
    strip -o gpu-bin/throughput target/release/examples/throughput
    tests=$(cargo test --release --features cuda --test gpu_kernels --no-run --message-format=json \
        | python3 -c 'import json, sys; print(*[m["executable"] for m in map(json.loads, sys.stdin) if m.get("executable")])')
    strip -o gpu-bin/gpu_kernels "$tests"
    xz -9 -f gpu-bin/throughput gpu-bin/throughput-autotune gpu-bin/gpu_kernels
    if [ -n "${UPSTREAM_SRC:-}" ] && [ -n "${UPSTREAM_BENCH:-}" ]; then
        stage=$(mktemp -d)
        mkdir -p "$stage/upstream/src" "$stage/upstream/bench"
        (cd "$UPSTREAM_SRC" && find . -name '*.py' -o -name '*.cpp' -o -name '*.cu' -o -name '*.h' \
            | tar -cf - -T -) | tar -xf - -C "$stage/upstream/src"
        cp "$(dirname "$UPSTREAM_BENCH")"/*.py "$stage/upstream/bench/"
        cp "$UPSTREAM_BENCH" "$stage/upstream/bench/bench.py"
        tar -C "$stage" -cJf gpu-bin/upstream.tar.xz upstream
        rm -rf "$stage"
    fi
    ls -l gpu-bin
    ;;
run)
    out="${2:-gpu-report}"
    mkdir -p "$out"
    if [ -n "${CUDA_LIB:-}" ]; then export LD_LIBRARY_PATH="$CUDA_LIB:${LD_LIBRARY_PATH:-}"; fi
    export HYPERSTYLE_FIXTURES="$PWD/tests/fixtures"
    bin=gpu-bin/throughput
    tuned=gpu-bin/throughput-autotune
    for b in "$bin" "$tuned" gpu-bin/gpu_kernels; do
        [ -x "$b" ] || { xz -dkf "$b.xz"; chmod +x "$b"; }
    done
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >"$out/memory.csv" &
    smi=$!
    trap 'kill "$smi" 2>/dev/null || true' EXIT
    nvidia-smi >"$out/device.txt" 2>&1 || true
    cache="$(mktemp -d)/cache"  # outside OUTDIR: compiled kernels are many files
    timeout 45 gpu-bin/gpu_kernels --nocapture --test-threads 1 >"$out/kernels.txt" 2>&1 || echo "exit $?" >>"$out/kernels.txt"
    if ! grep -q "test result: ok" "$out/kernels.txt"; then
        # Keep the other measurements: half precisions on the plain engine (tf32.txt still tries).
        export HYPERSTYLE_TENSOR_CORES=never
        echo "kernel tests failed: HYPERSTYLE_TENSOR_CORES=never for the runs after them" >>"$out/kernels.txt"
    fi
    timeout 60 "$bin" --cache-dir "$cache" --no-check --profile --batches 1 --runs 1 >"$out/cold.txt" 2>&1 || echo "exit $?" >>"$out/cold.txt"
    timeout 40 "$bin" --cache-dir "$cache" --no-check --profile --batches 1 --runs 1 >"$out/second_process.txt" 2>&1 || echo "exit $?" >>"$out/second_process.txt"
    timeout 60 "$bin" --cache-dir "$cache" --profile --batches 1,8 --runs 3 >"$out/f32.txt" 2>&1 || echo "f32: exit $?" >>"$out/f32.txt"
    timeout 40 "$bin" --cache-dir "$cache" --precision f16 --batches 1,8 --runs 3 >"$out/f16.txt" 2>&1 || echo "exit $?" >>"$out/f16.txt"
    timeout 40 "$bin" --cache-dir "$cache" --precision bf16 --batches 1,8 --runs 3 >"$out/bf16.txt" 2>&1 || echo "exit $?" >>"$out/bf16.txt"
    timeout 40 "$bin" --cache-dir "$cache" --precision tf32 --batches 1,8 --runs 3 >"$out/tf32.txt" 2>&1 || echo "exit $?" >>"$out/tf32.txt"
    timeout 60 "$tuned" --cache-dir "$cache-autotune" --no-check --profile --batches 1 --runs 1 >"$out/autotune_cold.txt" 2>&1 || echo "exit $?" >>"$out/autotune_cold.txt"
    timeout 40 "$tuned" --cache-dir "$cache-autotune" --no-check --profile --batches 1,8 --runs 3 >"$out/autotune_second.txt" 2>&1 || echo "exit $?" >>"$out/autotune_second.txt"
    if [ -f gpu-bin/upstream.tar.xz ]; then
        up=$(mktemp -d)
        tar -C "$up" -xJf gpu-bin/upstream.tar.xz
        export HYPERSTYLE_SRC="$up/upstream/src"
        timeout 40 "$bin" --cache-dir "$cache" --no-check --batches 1,8 --runs 5 --json >"$out/ours.json" 2>&1 || true
        timeout 60 python3 "$up/upstream/bench/bench.py" --batch 1 8 --reps 5 --native-ops \
            >"$out/upstream_native.txt" 2>&1 || echo "exit $?" >>"$out/upstream_native.txt"
        timeout 60 python3 "$up/upstream/bench/bench.py" --batch 1 8 --reps 5 \
            >"$out/upstream_jit.txt" 2>&1 || echo "exit $?" >>"$out/upstream_jit.txt"
        python3 - "$out" >"$out/side_by_side.md" <<'PY' || true
import json, sys
d = sys.argv[1]
def rows(name):
    try:
        return [json.loads(l) for l in open(f"{d}/{name}") if l.startswith("{") and "inversion_s_median" in l]
    except OSError:
        return []
ours = {r["batch"]: r for r in rows("ours.json")}
print("| upstream variant | batch | measure | upstream s | hyperstyle-rs s | ratio |")
print("| --- | --- | --- | --- | --- | --- |")
for variant in ["upstream_jit.txt", "upstream_native.txt"]:
    for r in rows(variant):
        o = ours.get(r["batch"])
        if not o:
            continue
        for key in ["inversion_s_median", "generator_s", "w_encoder_s", "hypernet_s"]:
            print(f"| {variant[9:-4]} | {r['batch']} | {key} | {r[key]:.4f} | {o[key]:.4f} | {o[key] / r[key]:.2f} |")
PY
        rm -rf "$up"
    fi
    ;;
*)
    echo "usage: $0 build | run [OUTDIR]" >&2
    exit 2
    ;;
esac
