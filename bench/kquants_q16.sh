#!/usr/bin/env bash
# Decode products on Gemma 3 270M's tensor shapes (bench/kquants/q16_bench.c, one thread): f32
# input, 16-bit input codes on the row-major GGUF blocks, and on the interleaved copies, in one
# run. Compiles the kernels with the toolchain's clang, writes bench/results/kquants-q16.json.
# usage: bench/kquants_q16.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
K=Sources/CKernels
clang -O3 -I"$K/include" -o "$tmp/q16_bench" bench/kquants/q16_bench.c "$K"/qrows.c "$K"/kquants.c "$K"/matvec.c \
  "$K"/matvec_q8.c "$K"/engine.c "$K"/kernels.c -lm
mkdir -p bench/results
"$tmp/q16_bench" "${1:-200}" > "$tmp/out.json"
python3 - "$tmp/out.json" <<'PY'
import datetime, json, subprocess, sys
r = json.load(open(sys.argv[1]))
r["machine"] = subprocess.run("lscpu | grep 'Model name' | cut -d: -f2", shell=True, capture_output=True, text=True).stdout.strip()
r["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
json.dump(r, open("bench/results/kquants-q16.json", "w"), indent=1)
print(f"Machine: {r['machine']}; {r['date']}; one thread, {r['isa']}\n")
print("| type | tensor | rows x cols | f32 input ms | 16-bit codes, row-major ms | 16-bit codes, interleaved ms | interleaved copy MB |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
for c in r["cases"]:
    laid = "-" if c["interleaved_ms"] is None else f"{c['interleaved_ms']:.3f}"
    mb = "-" if c["interleaved_ms"] is None else f"{c['interleaved_bytes'] / 1e6:.2f}"
    print(f"| {c['type']} | {c['tensor']} | {c['rows']} x {c['cols']} | {c['f32_ms']:.3f} | {c['q16rows_ms']:.3f} | {laid} | {mb} |")
PY
