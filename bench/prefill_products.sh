#!/usr/bin/env bash
# Prefill products on Gemma 3 270M's tensor shapes and SmolLM2's Q4_1 gate+up, one thread, in
# one run (bench/kquants/gemm_bench.c): BLAS sgemm on the dequantized f32 weights, the encoded
# small-row product (kv_matmul_rows), and 16-bit input codes against packed integer codes
# (kv_gemm_q16; AVX-512 VNNI where the CPU has it), for 30 and 512 input rows. Also checks that
# the dispatched, AVX2 and plain C paths of kv_gemm_q16 agree bit for bit. Writes
# bench/results/prefill-products.json, or RESULT_JSON. usage: bench/prefill_products.sh [REPS]
# What an AVX2 machine runs, measured on this one: OPENBLAS_CORETYPE=Haswell (sgemm's AVX2
# kernel) against the "q16 AVX2" column.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/c_harness.sh
HARNESS_FLAGS="-I/usr/include/x86_64-linux-gnu/openblas-pthread -lopenblas" OPENBLAS_NUM_THREADS=1 \
  c_harness_run "${RESULT_JSON:=bench/results/prefill-products.json}" gemm_bench.c "${1:-5}"
python3 - "$RESULT_JSON" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"Machine: {r['machine']}; {r['date']}; one thread, AVX-512 VNNI: {bool(r['vnni'])}; "
      f"OPENBLAS_CORETYPE: {r.get('blasCore') or 'default'}\n")
print("| type | tensor | rows x cols | input rows | sgemm GFLOP/s | kv_matmul_rows | kv_gemm_q16 | kv_gemm_q8 | q16 AVX2 | q16 / sgemm | q8 / q16 | q16 AVX2 / sgemm | C path equal |")
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for c in r["cases"]:
    print(f"| {c['type']} | {c['tensor']} | {c['rows']} x {c['cols']} | {c['m']} | {c['sgemm_gflops']:.1f} | "
          f"{c['matmul_rows_gflops']:.1f} | {c['gemm_q16_gflops']:.1f} | {c['gemm_q8_gflops']:.1f} | "
          f"{c['gemm_q16_avx2_gflops']:.1f} | {c['gemm_q16_gflops'] / c['sgemm_gflops']:.2f} | "
          f"{c['gemm_q8_gflops'] / c['gemm_q16_gflops']:.2f} | {c['gemm_q16_avx2_gflops'] / c['sgemm_gflops']:.2f} | "
          f"{c['portable_equal']} |")
PY
