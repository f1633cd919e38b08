#!/usr/bin/env bash
# Small-prefill products (8...32 input rows, one thread; bench/kquants/rows_bench.c): wide and
# narrow register tiles of kv_matmul_rows, and kv_matmul_interleaved on the interleaved copies,
# in one run. Compiles the kernels with the toolchain's clang, writes
# bench/results/small-prefill-tiles.json.
# usage: bench/small_prefill_tiles.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/c_harness.sh
c_harness_run bench/results/small-prefill-tiles.json rows_bench.c "${1:-20}"
python3 - bench/results/small-prefill-tiles.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"Machine: {r['machine']}; {r['date']}; one thread, {r['isa']}; GFLOP/s\n")
print("| type | model, tensor | rows x cols | input rows | wide tiles | narrow tiles | interleaved copy |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
for c in r["cases"]:
    la = "-" if c["interleaved_gflops"] is None else f"{c['interleaved_gflops']:.1f}"
    print(f"| {c['type']} | {c['model']} {c['tensor']} | {c['rows']} x {c['cols']} | {c['m']} | {c['wide_gflops']:.1f} | {c['narrow_gflops']:.1f} | {la} |")
PY
