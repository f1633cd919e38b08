#!/usr/bin/env bash
# Builds llama.cpp's llama-bench from the llama-cpp-python==0.3.36 sdist (PyPI) into a
# cache directory, once, then measures the baseline on the default model in this run:
# prefill (pp) at 512/2048/4096 tokens and decode (tg) on $THREADS threads (default 2).
# Writes bench/results/llamacpp.json. Never run by CI.
# GGML_NATIVE=ON built a binary that died with SIGILL on this KVM guest (gcc's -march=native
# enables instructions the guest does not allow), so the ISA is named explicitly: AVX-512 with
# VBMI, VNNI and BF16 (both CPUs of this machine kind have them), no AMX.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${KVSTASH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstash}/llamacpp"
MODEL="${KVSTASH_MODEL:-$(scripts/setup.sh | tail -n 1)}"
BIN="$CACHE/build-avx512vnni/bin/llama-bench"
if [ ! -x "$BIN" ]; then
  command -v cmake >/dev/null || { apt-get update -qq && apt-get install -y -qq cmake; }
  mkdir -p "$CACHE"
  if [ ! -d "$CACHE/src" ]; then
    python3 -m pip download -q --no-deps --no-binary llama-cpp-python llama-cpp-python==0.3.36 -d "$CACHE/dl"
    mkdir -p "$CACHE/src" && tar -xzf "$CACHE"/dl/llama_cpp_python-0.3.36.tar.gz -C "$CACHE/src" --strip-components=1
  fi
  cmake -S "$CACHE/src/vendor/llama.cpp" -B "$CACHE/build-avx512vnni" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON \
    -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=ON -DLLAMA_BUILD_SERVER=ON >/dev/null
  cmake --build "$CACHE/build-avx512vnni" -j "${JOBS:-2}" --target llama-bench llama-perplexity llama-server >/dev/null
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
