#!/usr/bin/env bash
# Runs the whole KVStash test suite: installs what is missing (apt packages, Python
# reference packages, the default model and Gemma 3 270M), builds in release mode with testing
# enabled (numeric Swift in debug is 10-100x slower), starts the Redis servers of the Redis tests
# (scripts/redis-test-servers.sh, stopped on exit), then runs every XCTest and the Python
# black-box tests. On a CPU with AVX-512 it then builds again with the kernels capped at AVX2
# (-DKVSTASH_MAX_ISA_AVX2, in .build-avx2) and runs the kernel and model tests there, so the
# paths AVX2 CPUs take are tested too (KVSTASH_SKIP_AVX2_BUILD=1 skips that). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
KVSTASH_MODEL="$(scripts/setup.sh | tail -n 1)"
KVSTASH_GEMMA3_MODEL="$(scripts/setup.sh gemma3 | tail -n 1)"
export KVSTASH_MODEL KVSTASH_GEMMA3_MODEL
BUILD=(-c release -Xswiftc -enable-testing)
swift build "${BUILD[@]}" --build-tests
source scripts/redis-test-servers.sh
redis_test_servers_start
swift test "${BUILD[@]}" --skip-build
if compgen -G "Tests/python/test_*.py" > /dev/null; then
  # The kvstash binary of the same (testing-enabled) release build: no second build.
  KVSTASH_BIN="$(swift build "${BUILD[@]}" --show-bin-path)/kvstash" python3 -m pytest -q Tests/python
fi
if grep -qw avx512f /proc/cpuinfo && [ "${KVSTASH_SKIP_AVX2_BUILD:-}" != 1 ]; then
  AVX2=("${BUILD[@]}" -Xcc -DKVSTASH_MAX_ISA_AVX2 --build-path .build-avx2)
  swift build "${AVX2[@]}" --build-tests
  swift test "${AVX2[@]}" --skip-build --filter \
    'AttentionPathTests|BatchInvarianceTests|InputQuantizationTests|KQuantTests|NarrowCodesTests|PackedProductTests|SixteenBitRowProductTests|SmallProductTests|SpliceTests|TinyModelTests|Gemma3ModelTests|RealModelTests|RequestPathTests'
fi
