#!/usr/bin/env bash
# Few-row products on 8-bit against 5-bit packed codes (bench/kquants/narrow_rows_bench.c, one
# thread): 1, 4, 9 and 10 input rows, weights streamed from memory and L2-resident, in one run.
# Compiles the kernels with the toolchain's clang, writes bench/results/narrow-rows.json, or
# RESULT_JSON.
# usage: bench/narrow_rows.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/c_harness.sh
c_harness_run "${RESULT_JSON:=bench/results/narrow-rows.json}" narrow_rows_bench.c "${1:-5}"
python3 - "$RESULT_JSON" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"Machine: {r['machine']}; {r['date']}; one thread, {r['isa']}; ms per 100M weights, best of {r['reps']}\n")
print("| input rows | 8-bit, streamed | 5-bit, streamed | 8-bit, in L2 | 5-bit, in L2 |")
print("| ---: | ---: | ---: | ---: | ---: |")
for c in r["cases"]:
    print(f"| {c['m']} | {c['eight_bit_stream_ms']:.2f} | {c['narrow_stream_ms']:.2f} | {c['eight_bit_l2_ms']:.2f} | {c['narrow_l2_ms']:.2f} |")
PY
