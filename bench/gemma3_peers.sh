#!/usr/bin/env bash
# Gemma 3 270M Q4_K_M against llama.cpp in one run: llama-bench prefill (pp512, pp4096) and
# decode (tg64 after 512 and 4096 tokens of context, `-d`), flash attention off and on, then
# kvstash-enginebench's prefill rows at 512/4096 and decode rows after the same contexts, on
# the same GGUF and $THREADS threads (default 2). Each repetition runs llama-bench once and
# the engine once, in alternating order, so a host that changes speed between repetitions
# moves both sides (bench/llamabench_pairs.py). llama-bench comes from bench/llamacpp_baseline.sh (built once
# into the cache directory).
# Each row's ratio is of the medians, against llama.cpp's better flash-attention setting for
# that row (the ratio against its default, off, is kept beside it); the ratio repetition by
# repetition and its median are in the JSON and the table. The prefill rows are measured twice:
# with the default 16-bit input codes and with 8-bit ones (`--prefill-inputs 8`, llama.cpp's
# input precision; KVSTASH_PREFILL_PRODUCT=int8).
# Writes bench/results/gemma3-peers.json (or $RESULT_JSON) and prints a markdown table. Never run by CI.
# usage: bench/gemma3_peers.sh [--reps N]   (N: repetitions, each llama-bench once and the engine once; default 1)
# Another GGUF: BENCH_MODEL=PATH RESULT_JSON=bench/results/NAME.json bench/gemma3_peers.sh
set -euo pipefail
cd "$(dirname "$0")/.."
REPS=1
[ "${1:-}" = --reps ] && REPS="$2"
MODEL="${BENCH_MODEL:-${KVSTASH_GEMMA3_MODEL:-$(scripts/setup.sh gemma3 | tail -n 1)}}"
OUT_JSON="${RESULT_JSON:-bench/results/gemma3-peers.json}"
BIN=$(BUILD_ONLY=1 bench/llamacpp_baseline.sh | sed -n 's/^built //p')
[ -x "$BIN" ] || { echo "llama-bench not built" >&2; exit 1; }
swift build -c release -Xswiftc -enable-testing --product kvstash-enginebench >&2
ENGINE="$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/kvstash-enginebench"
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
llama() {
  "$BIN" -m "$MODEL" -p 512,4096 -n 0 -t "${THREADS:-2}" -fa 0,1 -r 1 -o json > "$OUT/llama-pp-$1.json"
  "$BIN" -m "$MODEL" -p 0 -n 64 -d 512,4096 -t "${THREADS:-2}" -fa 0,1 -r 1 -o json > "$OUT/llama-tg-$1.json"
}
engine() {
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$ENGINE" --model "$MODEL" --lengths 512,4096 --contexts '' \
    --threads "${THREADS:-2}" --decode 64 --decode-after 512,4096 --out "$OUT/engine-$1.json" >&2
  env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE KVSTASH_PREFILL_PRODUCT=int8 "$ENGINE" --model "$MODEL" \
    --lengths 512,4096 --contexts '' --threads "${THREADS:-2}" --decode 0 --decode-after '' --out "$OUT/int8-$1.json" >&2
}
for i in $(seq "$REPS"); do  # odd repetitions llama.cpp first, even ones kvstash first
  if [ $((i % 2)) = 1 ]; then llama "$i"; engine "$i"; else engine "$i"; llama "$i"; fi
done
mkdir -p bench/results
python3 - "$OUT" "${THREADS:-2}" "$MODEL" "$OUT_JSON" <<'PY'
import json, subprocess, sys
sys.path.insert(0, "bench")
from llamabench_pairs import load_llama, load_runs, row
out, threads, model, out_json = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
llama, engine, int8 = load_llama(out), load_runs(out, "engine"), load_runs(out, "int8")
rows = []
for kind, n in (("prefill", 512), ("prefill", 4096), ("decode", 512), ("decode", 4096)):
    if kind == "prefill":
        ours = lambda x: x["kind"] == kind and x["tokens"] == n
        theirs = lambda r: r["n_prompt"] == n and r["n_gen"] == 0
    else:
        ours = lambda x: x["kind"] == kind and x["context"] == n
        theirs = lambda r: r["n_gen"] == 64 and r.get("n_depth") == n
    r = row(kind, n, engine, llama, ours, theirs)
    if kind == "prefill":
        eight = row(kind, n, int8, llama, ours, theirs)
        r.update({"kvstashPrefillInputs8": eight["kvstash"], "kvstashPrefillInputs8Runs": eight["kvstashRuns"],
                  "ratioPrefillInputs8": eight["ratio"]})
    rows.append(r)
lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
machine = next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "unknown")
first = engine[min(engine)]
report = {"model": model.rsplit("/", 1)[-1], "machine": machine, "threads": threads, "blasCore": first["blasCore"],
          "kernelISA": first["kernelISA"], "llamacpp": "llama-bench from the llama-cpp-python 0.3.36 sdist, -fa 0,1",
          "rows": rows}
json.dump(report, open(out_json, "w"), indent=1)
print(f"{machine}, {threads} threads, BLAS core {report['blasCore']}")
print("| test | kvstash tok/s | llama.cpp tok/s, fa off / on | kvstash / better llama.cpp | pair by pair (median) | / fa off |"
      " 8-bit prefill inputs tok/s | / better llama.cpp |\n|---|---|---|---|---|---|---|---|")
for r in rows:
    name = f"pp{r['tokens']}" if r["kind"] == "prefill" else f"tg64 after {r['context']}"
    eight = (f"{r['kvstashPrefillInputs8']:.1f} | {r['ratioPrefillInputs8']:.2f}" if "kvstashPrefillInputs8" in r
             else "– | –")
    print(f"| {name} | {r['kvstash']:.1f} | {r['llamacppFlashAttnOff']:.1f} / {r['llamacppFlashAttnOn']:.1f} | "
          f"{r['ratio']:.2f} | {', '.join(f'{x:.2f}' for x in r['ratioPaired'])} ({r['ratioPairedMedian']:.2f}) | "
          f"{r['ratioFlashAttnOff']:.2f} | {eight} |")
PY
