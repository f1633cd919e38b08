#!/usr/bin/env bash
# Builds llama.cpp's llama-bench from the llama-cpp-python==0.3.36 sdist (PyPI) into a
# cache directory, once, then measures the baseline on the default model in this run:
# prefill (pp) at 512/2048/4096 tokens and decode (tg) on $THREADS threads (default 2).
# Writes bench/results/llamacpp.json. Never run by CI.
# GGML_NATIVE=ON built a binary that died with SIGILL on a KVM guest (gcc's -march=native
# enables instructions the guest does not allow), so the ISA is named explicitly from the
# host's /proc/cpuinfo flags: AVX-512 (F, CD, VL, DQ, BW) where the CPU has it, with each of
# VBMI, VNNI and BF16 the CPU has (no AMX); else AVX2 + FMA + F16C. Each ISA set gets its own
# build directory, named after it.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${KVSTASH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstash}/llamacpp"
MODEL="${KVSTASH_MODEL:-$(scripts/setup.sh | tail -n 1)}"
FLAGS=$(grep -m1 '^flags' /proc/cpuinfo)
has() { [[ " $FLAGS " == *" $1 "* ]]; }
if has avx512f && has avx512cd && has avx512vl && has avx512dq && has avx512bw; then
  ISA=avx512; ISA_FLAGS="-DGGML_AVX512=ON"
  for ext in vbmi:avx512vbmi vnni:avx512_vnni bf16:avx512_bf16; do
    name=${ext%%:*}; flag=${ext#*:}; upper=$(tr a-z A-Z <<< "$name")
    if has "$flag"; then
      ISA="$ISA-$name"; ISA_FLAGS="$ISA_FLAGS -DGGML_AVX512_$upper=ON"
    else
      ISA_FLAGS="$ISA_FLAGS -DGGML_AVX512_$upper=OFF"
    fi
  done
else
  ISA=avx2; ISA_FLAGS="-DGGML_AVX512=OFF"
fi
BUILD="$CACHE/build-$ISA"
BIN="$BUILD/bin/llama-bench"
if [ ! -x "$BIN" ]; then
  command -v cmake >/dev/null || { apt-get update -qq && apt-get install -y -qq cmake; }
  mkdir -p "$CACHE"
  if [ ! -d "$CACHE/src" ]; then
    python3 -m pip download -q --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d "$CACHE/dl"
    mkdir -p "$CACHE/src" && tar -xzf "$CACHE"/dl/llama_cpp_python-0.3.36.tar.gz -C "$CACHE/src" --strip-components=1
  fi
  # shellcheck disable=SC2086  # ISA_FLAGS is a list of cmake options
  cmake -S "$CACHE/src/vendor/llama.cpp" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON $ISA_FLAGS \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_SERVER=ON >/dev/null
  cmake --build "$BUILD" -j "${JOBS:-2}" --target llama-bench llama-perplexity llama-server >/dev/null
fi
[ "${BUILD_ONLY:-0}" = 1 ] && { echo "built $BIN"; exit 0; }
mkdir -p bench/results
# Baseline settings mirror ours: no flash attention (and flash attention reported apart).
"$BIN" -m "$MODEL" -p 512,2048,4096 -n 64 -t "${THREADS:-2}" -fa 0,1 -r 2 -o json > bench/results/llamacpp.json
python3 - <<'PY'
import json
rows = json.load(open("bench/results/llamacpp.json"))
print("| test | threads | flash-attn | tokens/s |\n|---|---|---|---|")
for r in rows:
    t = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    print(f"| {t} | {r['n_threads']} | {r.get('flash_attn')} | {r['avg_ts']:.1f} |")
PY
