#!/usr/bin/env bash
# SentencePiece encode, segmented versus whole fragments (Gemma 3); writes
# bench/results/tokenizer-spm-segments.json. Extra arguments go to spm_segments_bench.py
# (e.g. --other before=/path/to/old/kvstash).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release -Xswiftc -enable-testing --product kvstash
exec python3 bench/spm_segments_bench.py "$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/kvstash" "$@"
