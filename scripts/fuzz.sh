#!/usr/bin/env bash
# Coverage-guided fuzzing of what KVStash reads from outside its process: KV blocks (the
# store, the shared tier), RESP replies (Redis), GGUF model files, a client's text through a
# real tokenizer (KVSTASH_FUZZ_MODEL names the GGUF, by default the default model of
# scripts/setup.sh) and a client's request bodies (Sources/KVStashFuzzing).
# Builds `kvstash-fuzz` twice: as usual (it writes the seed inputs and replays files) and with
# libFuzzer and AddressSanitizer on every Swift and C module (.build/fuzz); then fuzzes each
# target in turn. New inputs accumulate in .build/fuzz-corpus/TARGET across runs; an input
# that fails is written to .build/fuzz-findings/TARGET/ and the script exits 1.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 120 s; block resp gguf tokenizer request)
#
# Reproduce a finding with `swift run -c release kvstash-fuzz replay TARGET FILE`; once it is
# fixed, add the file to fuzz/corpus/TARGET/, whose inputs the tests replay.
set -euo pipefail
# A finding ends the process with fatalError: no Swift backtracer (AddressSanitizer reports its reads).
export SWIFT_BACKTRACE=enable=no
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-120}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(block resp gguf tokenizer request)
if [[ " ${TARGETS[*]} " == *" tokenizer "* ]] && [ -z "${KVSTASH_FUZZ_MODEL:-}" ]; then
  KVSTASH_FUZZ_MODEL="$(scripts/setup.sh | tail -n 1)"
fi
export KVSTASH_FUZZ_MODEL="${KVSTASH_FUZZ_MODEL:-}"
swift build -c release --product kvstash-fuzz
REPLAY="$(swift build -c release --show-bin-path)/kvstash-fuzz"
FUZZ=(-c release --product kvstash-fuzz --build-path .build/fuzz
      -Xswiftc -sanitize=fuzzer,address -Xswiftc -DKVSTASH_LIBFUZZER -Xcc -fsanitize=fuzzer-no-link,address)
swift build "${FUZZ[@]}"
FUZZER="$(swift build "${FUZZ[@]}" --show-bin-path)/kvstash-fuzz"
status=0
for target in "${TARGETS[@]}"; do
  corpus=.build/fuzz-corpus/$target seeds=.build/fuzz-seeds/$target findings=.build/fuzz-findings/$target
  mkdir -p "$corpus" "$findings"
  "$REPLAY" seeds "$target" "$seeds"
  dirs=("$corpus" "$seeds")
  [ -d "fuzz/corpus/$target" ] && dirs+=("fuzz/corpus/$target")
  echo "== $target: ${SECONDS_PER_TARGET} s"
  if ! "$FUZZER" fuzz "$target" -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=3072 -timeout=20 \
       -max_len=1048576 -print_final_stats=1 -artifact_prefix="$findings/" "${dirs[@]}" \
       > ".build/fuzz-$target.log" 2>&1; then
    status=1
    grep -E 'Fatal error|ERROR: AddressSanitizer|ERROR: libFuzzer|SUMMARY' ".build/fuzz-$target.log" | head -5 || true
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' ".build/fuzz-$target.log" || true
  ls "$findings"
done
exit "$status"
