#!/usr/bin/env bash
# Decode speed against llama.cpp in one run: llama-bench tg64 after 512 and 4096 tokens of
# context (`-d`, flash attention off and on) and kvstash-enginebench's decode rows after the
# same contexts, on the default model and $THREADS threads (default 2). Each repetition runs
# llama-bench once and the engine once, in alternating order, so a host that changes speed
# between repetitions moves both sides (bench/llamabench_pairs.py: medians, and the ratio
# repetition by repetition).
# llama-bench comes from bench/llamacpp_baseline.sh (built once into the cache directory).
# Writes bench/results/decode-peers.json and prints a markdown table. Never run by CI.
# usage: bench/decode_peers.sh [--reps N]   (N: repetitions, each llama-bench once and the engine once; default 3)
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
llama() { "$BIN" -m "$MODEL" -p 0 -n 64 -d 512,4096 -t "${THREADS:-2}" -fa 0,1 -r 1 -o json > "$OUT/llama-tg-$1.json"; }
engine() {
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$ENGINE" --model "$MODEL" --lengths '' --contexts '' \
    --threads "${THREADS:-2}" --decode 64 --decode-after 512,4096 --out "$OUT/engine-$1.json" >&2
}
for i in $(seq "$REPS"); do  # odd repetitions llama.cpp first, even ones kvstash first
  if [ $((i % 2)) = 1 ]; then llama "$i"; engine "$i"; else engine "$i"; llama "$i"; fi
done
mkdir -p bench/results
python3 - "$OUT" "${THREADS:-2}" <<'PY'
import json, subprocess, sys
sys.path.insert(0, "bench")
from llamabench_pairs import load_llama, load_runs, row
out, threads = sys.argv[1], int(sys.argv[2])
llama, engine = load_llama(out), load_runs(out, "engine")
rows = [row("decode", depth, engine, llama, lambda x: x["kind"] == "decode" and x["context"] == depth,
            lambda r: r["n_gen"] == 64 and r.get("n_depth") == depth) for depth in (512, 4096)]
lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
machine = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "unknown")
first = engine[min(engine)]
report = {"machine": machine, "threads": threads, "blasCore": first["blasCore"], "kernelISA": first["kernelISA"],
          "llamacppBuild": llama[min(llama)][0]["build_commit"],
          "note": "tg64 after the context; each side's median over repetitions that alternated between them",
          "rows": rows, "llamacpp": llama, "engine": engine}
json.dump(report, open("bench/results/decode-peers.json", "w"), indent=1)
print(f"Machine: {machine}; {threads} threads; BLAS core {report['blasCore']}; kernel ISA {report['kernelISA']}\n")
print("| decode tg64 after | kvstash tok/s | llama.cpp fa off | llama.cpp fa on | kvstash / llama.cpp (off, on) | pair by pair, better setting (median) |")
print("| --- | ---: | ---: | ---: | ---: | ---: |")
for r in rows:
    off, on = r["llamacppFlashAttnOff"], r["llamacppFlashAttnOn"]
    pairs = ", ".join(f"{x:.2f}" for x in r["ratioPaired"])
    print(f"| {r['context']} | {r['kvstash']:.1f} | {off:.1f} | {on:.1f} | {r['kvstash'] / off:.2f}, {r['kvstash'] / on:.2f} | "
          f"{pairs} ({r['ratioPairedMedian']:.2f}) |")
PY
