#!/usr/bin/env bash
# The KVStash demo: installs what is missing, fetches the default model, builds a
# release binary and generates from a chat prompt. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="$(scripts/setup.sh | tail -n 1)"
swift build -c release --product kvstash >&2
BIN="$(swift build -c release --show-bin-path)/kvstash"
"$BIN" generate --model "$MODEL" --chat -n 48 "What is the capital of France?"
