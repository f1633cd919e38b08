#!/usr/bin/env bash
# Compiles bench/store_read_options.c against Debian's librocksdb and measures page-cache-cold
# chunk reads under each RocksDB read setting against a sequential read of the same table
# file (see the C file). Writes bench/results/store-read-options.json and prints a table.
# usage: bench/store_read_options.sh [RUNS]   (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cc -O2 -pthread bench/store_read_options.c -lrocksdb -o "$WORK/store-read-options"
mkdir -p bench/results
"$WORK/store-read-options" "$WORK/db" "${1:-5}" > "$WORK/out.json"
python3 - "$WORK/out.json" <<'PY'
import json, subprocess, sys, datetime
r = json.load(open(sys.argv[1]))
lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
r["machine"] = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "unknown")
r["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
json.dump(r, open("bench/results/store-read-options.json", "w"), indent=1)
s = r["sequential"]
print(f"Machine: {r['machine']}; {r['values']} values of {r['valueBytes']} B; medians of {r['runs']} runs\n")
print(f"Sequential cold read of the table file: {s['megabytes']:.1f} MB in {s['ms']:.0f} ms = {s['MBps']:.0f} MB/s\n")
print("| setting | threads | page cache | ms | MB/s | / sequential |\n| --- | ---: | --- | ---: | ---: | ---: |")
for x in r["settings"]:
    print(f"| {x['setting']} | {x['threads']} | {'cold' if x['cold'] else 'warm'} | {x['ms']:.1f} | {x['MBps']:.0f} | {x['overSequential']:.2f} |")
PY
