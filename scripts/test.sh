#!/usr/bin/env bash
# Runs the whole KVStash test suite: installs what is missing (apt packages, Python
# reference packages, the default model and Gemma 3 270M), builds in release mode with testing enabled
# (numeric Swift in debug is 10-100x slower), then runs every XCTest and the Python
# black-box tests. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
KVSTASH_MODEL="$(scripts/setup.sh | tail -n 1)"
KVSTASH_GEMMA3_MODEL="$(scripts/setup.sh gemma3 | tail -n 1)"
export KVSTASH_MODEL KVSTASH_GEMMA3_MODEL
BUILD=(-c release -Xswiftc -enable-testing)
swift build "${BUILD[@]}" --build-tests
swift test "${BUILD[@]}" --skip-build
if compgen -G "Tests/python/test_*.py" > /dev/null; then
  # The kvstash binary of the same (testing-enabled) release build: no second build.
  KVSTASH_BIN="$(swift build "${BUILD[@]}" --show-bin-path)/kvstash" python3 -m pytest -q Tests/python
fi
