#!/usr/bin/env bash
# Tokenizer throughput versus HF tokenizers; writes bench/results/tokenizer.json.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release -Xswiftc -enable-testing --product kvstash
exec python3 bench/tokenizer_bench.py "$(swift build -c release -Xswiftc -enable-testing --show-bin-path)/kvstash" "$@"
