#!/usr/bin/env bash
# Decode-path products on every GGUF block type (kv_matvec, one thread): time of a 2048 x 2048
# product per type as a ratio to the f32 product in the same run. Compiles the kernels with the
# toolchain's clang (runtime CPU dispatch as in the package), writes bench/results/kquants.json.
# usage: bench/kquants.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/c_harness.sh
c_harness_run bench/results/kquants.json matvec_bench.c "${1:-100}"
python3 - bench/results/kquants.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"Machine: {r['machine']}; {r['date']}; {r['rows']} x {r['cols']}, f32 {r['f32_ms']:.3f} ms\n")
print("| type | ms | time / f32 time | encoded GB/s |\n| --- | --- | --- | --- |")
for t in r["types"]:
    print(f"| {t['type']} | {t['ms']:.3f} | {t['ratio_to_f32']:.2f} | {t['encoded_GBps']:.1f} |")
PY
