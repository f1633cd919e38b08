#!/usr/bin/env bash
# Decode products on Gemma 3 270M's tensor shapes (bench/kquants/q16_bench.c, one thread): f32
# input, 16-bit input codes on the row-major GGUF blocks (lanes order, and the packed product's
# order), and on the interleaved copies, in one run. Compiles the kernels with the toolchain's
# clang, writes bench/results/kquants-q16.json, or RESULT_JSON. What an AVX2 CPU runs, measured
# on an AVX-512 one: HARNESS_FLAGS=-DKVSTASH_MAX_ISA_AVX2.
# usage: bench/kquants_q16.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/c_harness.sh
c_harness_run "${RESULT_JSON:=bench/results/kquants-q16.json}" q16_bench.c "${1:-200}"
python3 - "$RESULT_JSON" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"Machine: {r['machine']}; {r['date']}; one thread, {r['isa']}\n")
print("| type | tensor | rows x cols | f32 input ms | 16-bit codes, row-major ms | row-major, packed order ms | 16-bit codes, interleaved ms | interleaved copy MB |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
for c in r["cases"]:
    laid = "-" if c["interleaved_ms"] is None else f"{c['interleaved_ms']:.3f}"
    mb = "-" if c["interleaved_ms"] is None else f"{c['interleaved_bytes'] / 1e6:.2f}"
    print(f"| {c['type']} | {c['tensor']} | {c['rows']} x {c['cols']} | {c['f32_ms']:.3f} | {c['q16rows_ms']:.3f} | {c['q16rows_ordered_ms']:.3f} | {laid} | {mb} |")
PY
