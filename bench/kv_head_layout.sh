#!/usr/bin/env bash
# A decode step's attention over the f16 KV cache with each KV head's rows together (KVCache's
# layout) against rows of every head side by side, one thread (bench/kquants/kv_head_layout_bench.c);
# writes bench/results/kv-head-layout.json and prints its table.
# usage: bench/kv_head_layout.sh [REPS]   (default 10; run it under the machine's CPU lock)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/c_harness.sh
c_harness_run bench/results/kv-head-layout.json kv_head_layout_bench.c "${1:-10}"
python3 - bench/results/kv-head-layout.json "$(git describe --always --dirty)" "${1:-10}" <<'PY'
import json, sys
path, tree, reps = sys.argv[1:]
r = json.load(open(path))
r["tree"], r["command"] = tree, "bench/kv_head_layout.sh " + reps
json.dump(r, open(path, "w"), indent=1)
print(f"Machine: {r['machine']}; {r['date']}; one thread, best of {r['reps']}\n")
print("| keys | K+V per step | rows of all heads | head-major | speedup | GB/s rows / head-major | read 128 of 384 B / all, GB/s |")
print("| ---: | ---: | ---: | ---: | ---: | --- | --- |")
for c in r["cases"]:
    print(f"| {c['keys']} | {c['bytesPerStepMB']:.1f} MB | {c['rowsLayoutMs']:.2f} ms | {c['headMajorMs']:.2f} ms | "
          f"{c['headMajorSpeedup']:.2f}x | {c['rowsGBps']:.1f} / {c['headMajorGBps']:.1f} | "
          f"{c['read128of384GBps']:.1f} / {c['readAllGBps']:.1f} |")
PY
