#!/usr/bin/env bash
# Codec size, speed and quality on real KV (docs/benchmarks.md, Codec): the default model, or
# with --gemma3 Gemma 3 270M (KVSTASH_GEMMA3_MODEL or scripts/setup.sh gemma3), written to
# bench/results/codec-real-gemma3.json. Any other model: --model PATH --name NAME.
# Corpus: /usr/share/common-licenses/GPL-3 followed by Python's pydoc_data.topics.
# Usage: bench/codec_quality.sh [--gemma3] [codec-bench options, e.g. --ppl-tokens 20480 --prompts 50 --threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --gemma3 ]; then
  shift
  set -- --model "${KVSTASH_GEMMA3_MODEL:-$(scripts/setup.sh gemma3 | tail -n 1)}" --name codec-real-gemma3 "$@"
fi
MODEL="${KVSTASH_MODEL:-$(scripts/setup.sh | tail -n 1)}"
corpus="$(mktemp -d)"; trap 'rm -rf "$corpus"' EXIT
python3 -c "import pydoc_data.topics as t; print('\n\n'.join(t.topics[k] for k in sorted(t.topics)))" > "$corpus/pydoc_topics.txt"
swift build -c release -Xswiftc -enable-testing --product codec-bench >&2
# The codec figures do not depend on BLAS; only the quality loop's run time does. Debian's
# OpenBLAS 0.3.21 falls back to its Prescott kernels on some Xeons: set CODEC_BENCH_BLAS_CORE
# (e.g. SkylakeX) to force a core there.
blas=(-u OPENBLAS_CORETYPE)
[ -n "${CODEC_BENCH_BLAS_CORE:-}" ] && blas=(OPENBLAS_CORETYPE="$CODEC_BENCH_BLAS_CORE")
env -u OPENBLAS_L2_SIZE "${blas[@]}" "$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/codec-bench" real \
  --model "$MODEL" --text /usr/share/common-licenses/GPL-3 --text "$corpus/pydoc_topics.txt" "$@"
