#!/usr/bin/env bash
# Decode speed against llama.cpp in one run: llama-bench tg64 after 512 and 4096 tokens of
# context (`-d`, flash attention off and on) and kvstash-enginebench's decode rows after the
# same contexts, on the default model and $THREADS threads (default 2), back to back.
# llama-bench comes from bench/llamacpp_baseline.sh (built once into the cache directory).
# Writes bench/results/decode-peers.json and prints a markdown table. Never run by CI.
# usage: bench/decode_peers.sh [--reps N]   (N: llama-bench repetitions and engine runs, default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=3
[ "${1:-}" = --reps ] && REPS="$2"
MODEL="${KVSTASH_MODEL:-$(scripts/setup.sh | tail -n 1)}"
BIN=$(KVSTASH_MODEL="$MODEL" BUILD_ONLY=1 bench/llamacpp_baseline.sh | sed -n 's/^built //p')
[ -x "$BIN" ] || { echo "llama-bench not built" >&2; exit 1; }
swift build -c release -Xswiftc -enable-testing --product kvstash-enginebench >&2
ENGINE="$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/kvstash-enginebench"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
"$BIN" -m "$MODEL" -p 0 -n 64 -d 512,4096 -t "${THREADS:-2}" -fa 0,1 -r "$REPS" -o json > "$OUT/llama.json"
for i in $(seq "$REPS"); do
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$ENGINE" --model "$MODEL" --lengths '' --contexts '' \
    --threads "${THREADS:-2}" --decode 64 --decode-after 512,4096 --out "$OUT/engine-$i.json" >&2
done
mkdir -p bench/results
python3 - "$OUT" "${THREADS:-2}" <<'PY'
import glob, json, statistics, subprocess, sys
out, threads = sys.argv[1], int(sys.argv[2])
llama = json.load(open(f"{out}/llama.json"))
engine = [json.load(open(p)) for p in sorted(glob.glob(f"{out}/engine-*.json"))]
rows = []
for depth in (512, 4096):
    ours = [x["tokensPerSecond"] for e in engine for x in e["results"] if x["kind"] == "decode" and x["context"] == depth]
    row = {"context": depth, "kvstash": statistics.median(ours), "kvstashRuns": ours}
    for r in llama:
        if r["n_depth"] == depth:
            row["llamacppFlashAttn" + ("On" if r["flash_attn"] else "Off")] = r["avg_ts"]
    rows.append(row)
lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
machine = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "unknown")
report = {"machine": machine, "threads": threads, "blasCore": engine[0]["blasCore"], "kernelISA": engine[0]["kernelISA"],
          "llamacppBuild": llama[0]["build_commit"], "note": "tg64 after the context; kvstash: median of its runs",
          "rows": rows, "llamacpp": llama, "engine": engine}
json.dump(report, open("bench/results/decode-peers.json", "w"), indent=1)
print(f"Machine: {machine}; {threads} threads; BLAS core {report['blasCore']}; kernel ISA {report['kernelISA']}\n")
print("| decode tg64 after | kvstash tok/s | llama.cpp fa off | llama.cpp fa on | kvstash / llama.cpp (off, on) |")
print("| --- | ---: | ---: | ---: | ---: |")
for r in rows:
    off, on = r.get("llamacppFlashAttnOff", 0), r.get("llamacppFlashAttnOn", 0)
    print(f"| {r['context']} | {r['kvstash']:.1f} | {off:.1f} | {on:.1f} | {r['kvstash'] / off:.2f}, {r['kvstash'] / on:.2f} |")
PY
