#!/usr/bin/env bash
# Small-prefill products (8...32 input rows, one thread; bench/kquants/rows_bench.c): wide and
# narrow register tiles of kv_matmul_rows, and kv_matmul_interleaved on the interleaved copies,
# in one run. Compiles the kernels with the toolchain's clang, writes
# bench/results/small-prefill-tiles.json.
# usage: bench/small_prefill_tiles.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
K=Sources/CKernels
clang -O3 -I"$K/include" -o "$tmp/rows_bench" bench/kquants/rows_bench.c "$K"/qrows.c "$K"/kquants.c "$K"/matvec.c \
  "$K"/matvec_q8.c "$K"/engine.c "$K"/kernels.c -lm
mkdir -p bench/results
"$tmp/rows_bench" "${1:-20}" > "$tmp/out.json"
python3 - "$tmp/out.json" <<'PY'
import datetime, json, subprocess, sys
r = json.load(open(sys.argv[1]))
r["machine"] = subprocess.run("lscpu | grep 'Model name' | cut -d: -f2", shell=True, capture_output=True, text=True).stdout.strip()
r["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
json.dump(r, open("bench/results/small-prefill-tiles.json", "w"), indent=1)
print(f"Machine: {r['machine']}; {r['date']}; one thread, {r['isa']}; GFLOP/s\n")
print("| type | model, tensor | rows x cols | input rows | wide tiles | narrow tiles | interleaved copy |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
for c in r["cases"]:
    la = "-" if c["interleaved_gflops"] is None else f"{c['interleaved_gflops']:.1f}"
    print(f"| {c['type']} | {c['model']} {c['tensor']} | {c['rows']} x {c['cols']} | {c['m']} | {c['wide_gflops']:.1f} | {c['narrow_gflops']:.1f} | {la} |")
PY
