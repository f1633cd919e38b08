#!/usr/bin/env bash
# Attention over int8 KV pages against the f16 KV cache, one thread (bench/kv_int8_attention.c):
# builds the harness with Sources/CKernels/attention.c compiled in, with the flags of an AVX2
# CKernels build, runs it under the machine's CPU lock, writes bench/results/kv-int8-attention.json
# and prints the tables of docs/benchmarks.md.
# usage: bench/kv_int8_attention.sh [REPS]   (default 30; sweeps take REPS/3 + 1)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
FLAGS=(-O3 -mavx2 -mfma -mf16c)
clang "${FLAGS[@]}" -I Sources/CKernels/include bench/kv_int8_attention.c Sources/CKernels/kernels.c -lm -o "$WORK/kv-int8-attention"
mkdir -p bench/results
flock -o /tmp/cpu.lock "$WORK/kv-int8-attention" "${1:-30}" > "$WORK/out.json"
FLAGS="${FLAGS[*]}" python3 - "$WORK/out.json" "$(git describe --always --dirty)" <<'PY'
import json, os, subprocess, sys, datetime
r = json.load(open(sys.argv[1]))
lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
field = lambda k: next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith(k)), "unknown")
flags = field("Flags").split()
r["machine"] = field("Model name")
r["isa"] = "+".join(x for x in ("avx512f", "avx2", "fma", "f16c") if x in flags)
r["compiler"] = subprocess.run(["clang", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
r["flags"] = os.environ["FLAGS"]
r["tree"] = sys.argv[2]
r["command"] = "bench/kv_int8_attention.sh " + str(r["reps"])
r["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
json.dump(r, open("bench/results/kv-int8-attention.json", "w"), indent=1)
print(f"Machine: {r['machine']} ({r['isa']}), one thread, {r['tiles']} tiles, best of {r['reps']} (sweeps {r['reps'] // 3 + 1})\n")
print("| case | pass (MB: f16 / int8) | f16 ms/head | copy on f16 | int8 | int8 / f16 | f16 K + int8 V | / f16 | GFLOP/s f16 / int8 |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
for c in r["cases"]:
    for key, where in (("hotOneHead", "hot"), ("sweep30x3PerHead", "30 x 3")):
        x = c[key]
        ms, mb, g, q = x["ms"], x["workingSetMB"], x["GFLOPs"], x["overF16"]
        print(f"| {c['case']} | {where} ({mb['f16']:.1f} / {mb['int8']:.1f}) | {ms['f16']:.3f} | {ms['f16Copy']:.3f} | "
              f"{ms['int8']:.3f} | {q['int8']:.2f} | {ms['f16KInt8V']:.3f} | {q['f16KInt8V']:.2f} | {g['f16']:.1f} / {g['int8']:.1f} |")
b, p = r["bytesPerKeyPerKVHead"], r["pageFill3525Tokens"]
print(f"\nBytes read per key and KV head: f16 {b['f16']}, int8 {b['int8']}, f16 K + int8 V {b['f16KInt8V']} (codes + f32 row scales)")
print(f"Page fill, 3,525 tokens: memcpy f16 {p['f16Bytes'] / 1e6:.1f} MB {p['memcpyF16ms']:.1f} ms, "
      f"int8 {p['int8Bytes'] / 1e6:.1f} MB {p['memcpyInt8ms']:.1f} ms; quantizing f32 rows to int8 {p['quantizeF32RowsToInt8ms']:.1f} ms")
PY
