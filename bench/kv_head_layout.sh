#!/usr/bin/env bash
# A decode step's attention over the f16 KV cache with each KV head's rows together (KVCache's
# layout) against rows of every head side by side, one thread (bench/kv_layout/kv_head_layout.c,
# compiled with Sources/CKernels' kernels and runtime CPU dispatch); writes
# bench/results/kv-head-layout.json and prints its table.
# usage: bench/kv_head_layout.sh [REPS]   (default 10; holds the machine's CPU lock)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
K=Sources/CKernels
clang -O3 -I "$K/include" bench/kv_layout/kv_head_layout.c "$K/attention.c" "$K/kernels.c" "$K/engine.c" \
  -lm -lpthread -o "$WORK/kv-head-layout"
mkdir -p bench/results
flock -o /tmp/cpu.lock "$WORK/kv-head-layout" "${1:-10}" > "$WORK/out.json"
python3 - "$WORK/out.json" "$(git describe --always --dirty)" "${1:-10}" <<'PY'
import datetime, json, os, subprocess, sys
r = json.load(open(sys.argv[1]))
lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
r["machine"] = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "unknown")
r["isa"] = subprocess.run(["sh", "-c", "grep -o -w -m1 -e avx512f /proc/cpuinfo || echo avx2"], capture_output=True,
                          text=True).stdout.strip()
r["tree"] = sys.argv[2]
r["command"] = "bench/kv_head_layout.sh " + sys.argv[3]
r["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
json.dump(r, open("bench/results/kv-head-layout.json", "w"), indent=1)
print(f"Machine: {r['machine']} ({r['isa']}), one thread, best of {r['reps']}\n")
print("| keys | K+V per step | rows of all heads | head-major | speedup | GB/s rows / head-major | read 128 of 384 B / all, GB/s |")
print("| ---: | ---: | ---: | ---: | ---: | --- | --- |")
for c in r["cases"]:
    print(f"| {c['keys']} | {c['bytesPerStepMB']:.1f} MB | {c['rowsLayoutMs']:.2f} ms | {c['headMajorMs']:.2f} ms | "
          f"{c['headMajorSpeedup']:.2f}x | {c['rowsGBps']:.1f} / {c['headMajorGBps']:.1f} | "
          f"{c['read128of384GBps']:.1f} / {c['readAllGBps']:.1f} |")
PY
