#!/usr/bin/env bash
# The KVStash demo: installs what is missing, fetches the default model, builds a release
# binary, then shows a prefix-cache miss and a hit on the project's own docs:
#   1. asks a question about README.md with an empty store (a miss: full prefill),
#   2. precomputes README.md and docs/*.md into the store,
#   3. asks the same question again in a new process (a hit: the KV comes from disk),
#      and once more in that process (a hit from the RAM tier),
# and prints both times to first token. Idempotent (the demo store is rebuilt each run).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="$(scripts/setup.sh | tail -n 1)"
swift build -c release --product kvstash >&2
BIN="$(swift build -c release --show-bin-path)/kvstash"
STORE="${KVSTASH_DEMO_STORE:-${TMPDIR:-/tmp}/kvstash-demo-store}"
QUESTION="Summarize this document in one sentence."
rm -rf "$STORE"

# Runs `kvstash query`, its answer to stdout, its stats lines (stderr) to the screen and to $1.
query() { local out="$1"; shift; { "$BIN" query "$@" 2>&1 1>&3 | tee "$out" >&2; } 3>&1; }
ttft() { grep -o 'TTFT [0-9.]* ms' "$1" | tail -n "${2:-1}" | head -n 1 | awk '{print $2}'; }
log() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

log "1. Miss: ask about README.md with an empty store"
query "$STORE.miss.txt" --store "$STORE" --model "$MODEL" --context-file README.md -n 64 "$QUESTION"

log "2. Precompute README.md and docs/*.md"
"$BIN" precompute --store "$STORE" --model "$MODEL" --include '*.md' README.md docs

log "3. Hit: the same question in a new process (from disk), then again (from RAM)"
query "$STORE.hit.txt" --store "$STORE" --doc README.md -n 64 --repeat 2 "$QUESTION"

MISS="$(ttft "$STORE.miss.txt")"; COLD="$(ttft "$STORE.hit.txt" 2)"; HOT="$(ttft "$STORE.hit.txt")"
log "Time to first token"
awk -v m="$MISS" -v c="$COLD" -v h="$HOT" 'BEGIN {
  printf "miss (full prefill): %8.1f ms\n", m
  printf "hit, cold (disk):    %8.1f ms  (%.0fx faster)\n", c, m / c
  printf "hit, hot (RAM):      %8.1f ms  (%.0fx faster)\n", h, m / h }'
rm -f "$STORE.miss.txt" "$STORE.hit.txt"
