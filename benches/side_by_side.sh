#!/usr/bin/env bash
# The ffhq1024 inversion (W encoder + 5 refinement steps, batch 1) of the upstream PyTorch
# implementation and of this project, back to back on the same machine, with the ratios.
#
# usage: benches/side_by_side.sh [RUNS]
#   UPSTREAM_PYTHON  a Python with torch and torchvision            (default: python3)
#   UPSTREAM_SRC     a checkout of the upstream HyperStyle code     (required)
#   UPSTREAM_BENCH   a timing script for it that prints JSON lines with inversion_s_median,
#                    generator_s, w_encoder_s and hypernet_s for `--batch 1 --reps RUNS`
#                    (required; on a CPU-only torch it must stand in for the CUDA-only ops)
#
# Prints both raw JSON lines and a Markdown table: seconds (median of RUNS after warm-up runs),
# peak resident set of each process, and this project's time as a fraction of upstream's.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
: "${UPSTREAM_SRC:?set UPSTREAM_SRC to the upstream checkout}"
: "${UPSTREAM_BENCH:?set UPSTREAM_BENCH to the upstream timing script}"
python=${UPSTREAM_PYTHON:-python3}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

cargo build --release --example throughput >&2
echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)" >&2

echo "upstream ($runs runs)..." >&2
HYPERSTYLE_SRC="$UPSTREAM_SRC" /usr/bin/time -f '%M' -o "$out/upstream.rss" \
    "$python" "$UPSTREAM_BENCH" --batch 1 --reps "$runs" > "$out/upstream.json"
echo "this project ($runs runs)..." >&2
/usr/bin/time -f '%M' -o "$out/ours.rss" \
    ./target/release/examples/throughput --no-check --batches 1 --runs "$runs" --json > "$out/ours.txt"

python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
def last_json(path, key):
    rows = [json.loads(l) for l in open(path) if l.startswith("{")]
    return [r for r in rows if key in r][-1]
up = last_json(f"{d}/upstream.json", "inversion_s_median")
us = last_json(f"{d}/ours.txt", "inversion_s_median")
up["peak_rss_mib"] = int(open(f"{d}/upstream.rss").read().split()[-1]) / 1024
us["peak_rss_mib"] = int(open(f"{d}/ours.rss").read().split()[-1]) / 1024
print(json.dumps({"upstream": up}))
print(json.dumps({"hyperstyle-rs": us}))
print()
print("| measure | upstream | hyperstyle-rs | ratio |")
print("| --- | --- | --- | --- |")
for key, name, unit in [("inversion_s_median", "full inversion", "s"), ("generator_s", "generator (1024, no offsets)", "s"),
                        ("w_encoder_s", "W encoder", "s"), ("hypernet_s", "hypernetwork", "s"), ("peak_rss_mib", "peak RSS", "MiB")]:
    a, b = up[key], us[key]
    fmt = "{:.0f}" if unit == "MiB" else "{:.3f}"
    print(f"| {name} | {fmt.format(a)} {unit} | {fmt.format(b)} {unit} | {b / a:.2f} |")
PY
