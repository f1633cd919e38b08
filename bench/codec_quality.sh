#!/usr/bin/env bash
# Codec size, speed and quality on real KV from the default model (docs/benchmarks.md, Codec).
# Corpus: /usr/share/common-licenses/GPL-3 followed by Python's pydoc_data.topics.
# Usage: bench/codec_quality.sh [codec-bench options, e.g. --ppl-tokens 20480 --prompts 50 --threads 2]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${KVSTASH_MODEL:-$(scripts/setup.sh | tail -n 1)}"
corpus="$(mktemp -d)"; trap 'rm -rf "$corpus"' EXIT
python3 -c "import pydoc_data.topics as t; print('\n\n'.join(t.topics[k] for k in sorted(t.topics)))" > "$corpus/pydoc_topics.txt"
swift build -c release --product codec-bench >&2
# The codec figures do not depend on BLAS; only the quality loop's run time does. Debian's
# OpenBLAS 0.3.21 falls back to its Prescott kernels on some Xeons: set CODEC_BENCH_BLAS_CORE
# (e.g. SkylakeX) to force a core there.
blas=(-u OPENBLAS_CORETYPE)
[ -n "${CODEC_BENCH_BLAS_CORE:-}" ] && blas=(OPENBLAS_CORETYPE="$CODEC_BENCH_BLAS_CORE")
env -u OPENBLAS_L2_SIZE "${blas[@]}" "$(swift build -c release --show-bin-path)/codec-bench" real \
  --model "$MODEL" --text /usr/share/common-licenses/GPL-3 --text "$corpus/pydoc_topics.txt" "$@"
