#!/usr/bin/env bash
# Decode-path products on every GGUF block type (kv_matvec, one thread): time of a 2048 x 2048
# product per type as a ratio to the f32 product in the same run. Compiles the kernels with the
# toolchain's clang (runtime CPU dispatch as in the package), writes bench/results/kquants.json.
# usage: bench/kquants.sh [REPS]
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
K=Sources/CKernels
clang -O3 -I"$K/include" -o "$tmp/matvec_bench" bench/kquants/matvec_bench.c "$K/kquants.c" "$K/matvec.c" "$K/engine.c" -lm
mkdir -p bench/results
"$tmp/matvec_bench" "${1:-100}" > "$tmp/out.json"
python3 - "$tmp/out.json" <<'PY'
import datetime, json, subprocess, sys
r = json.load(open(sys.argv[1]))
r["machine"] = subprocess.run("lscpu | grep 'Model name' | cut -d: -f2", shell=True, capture_output=True, text=True).stdout.strip()
r["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
json.dump(r, open("bench/results/kquants.json", "w"), indent=1)
print(f"Machine: {r['machine']}; {r['date']}; {r['rows']} x {r['cols']}, f32 {r['f32_ms']:.3f} ms\n")
print("| type | ms | time / f32 time | encoded GB/s |\n| --- | --- | --- | --- |")
for t in r["types"]:
    print(f"| {t['type']} | {t['ms']:.3f} | {t['ratio_to_f32']:.2f} | {t['encoded_GBps']:.1f} |")
PY
