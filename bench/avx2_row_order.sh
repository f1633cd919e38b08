#!/usr/bin/env bash
# Decode on AVX2 CPUs: one row of a K-quant matrix in the packed product's float order
# (kv_matvec_q16rows_ordered, the default there: rows batch-invariant) against the faster lanes
# order (KVSTASH_ROW_ORDER=lanes: not batch-invariant), on a build whose kernels are capped at
# AVX2 (what an AVX2 CPU runs; on an AVX-512 host, measured with its own build path). The two
# alternate process by process, ROUNDS rounds, kvstash-enginebench decoding 128 tokens after 512
# and 4,096, 2 threads. Writes bench/results/avx2-row-order.json, or RESULT_JSON.
# usage: bench/avx2_row_order.sh [ROUNDS]   (default 6; MODEL defaults to Gemma 3 270M Q4_K_M)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-6}"
MODEL="${MODEL:-$(scripts/setup.sh gemma3 | tail -n 1)}"
OUT="${RESULT_JSON:-bench/results/avx2-row-order.json}"
BUILD=(-c release -Xcc -DKVSTASH_MAX_ISA_AVX2 --build-path .build-avx2-bench)
swift build "${BUILD[@]}" --product kvstash-enginebench >&2
ENGINE="$(swift build "${BUILD[@]}" --show-bin-path)/kvstash-enginebench"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
for i in $(seq "$ROUNDS"); do
  for order in ordered lanes; do
    env -u OPENBLAS_CORETYPE KVSTASH_ROW_ORDER="$order" "$ENGINE" --model "$MODEL" --lengths '' --contexts '' \
      --threads 2 --decode 128 --decode-after 512,4096 --out "$TMP/$order-$i.json" >&2
  done
done
python3 - "$TMP" "$ROUNDS" "$MODEL" "$OUT" <<'PY'
import datetime, json, os, statistics, subprocess, sys
tmp, rounds, model, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
rows, first = {}, None
for order in ("ordered", "lanes"):
    for i in range(1, rounds + 1):
        r = json.load(open(f"{tmp}/{order}-{i}.json"))
        first = first or r
        for x in r["results"]:
            if x["kind"] == "decode":
                rows.setdefault((order, x["context"]), []).append(x["tokensPerSecond"])
summary = []
for (order, context), v in sorted(rows.items()):
    summary.append({"order": order, "context": context, "tokensPerSecond": v, "median": statistics.median(v)})
ratio = {str(c): statistics.median(rows[("ordered", c)]) / statistics.median(rows[("lanes", c)])
         for c in sorted({c for _, c in rows})}
machine = subprocess.run("lscpu | grep 'Model name' | cut -d: -f2", shell=True, capture_output=True,
                         text=True).stdout.strip()
json.dump({"machine": machine, "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "kernelISA": first["kernelISA"], "blasCore": first["blasCore"], "model": os.path.basename(model),
           "rounds": rounds, "threads": 2, "decodeTokens": 128, "rows": summary,
           "orderedOverLanes": ratio}, open(out, "w"), indent=1)
print(f"Machine: {machine}; kernel ISA {first['kernelISA']}; {rounds} rounds alternated\n")
print("| decode after | ordered rows (default) tok/s | lanes order tok/s | ordered / lanes |")
print("| ---: | ---: | ---: | ---: |")
for c in sorted({c for _, c in rows}):
    o, l = rows[("ordered", c)], rows[("lanes", c)]
    print(f"| {c:,} | {statistics.median(o):.1f} ({min(o):.1f}–{max(o):.1f}) | "
          f"{statistics.median(l):.1f} ({min(l):.1f}–{max(l):.1f}) | {ratio[str(c)]:.2f} |")
PY
