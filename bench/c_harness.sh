# Sourced by the kernel benchmarks in C (bench/kquants.sh, kquants_q16.sh, small_prefill_tiles.sh,
# prefill_products.sh, kv_head_layout.sh).
# c_harness_run OUT_JSON SOURCE ARGS...: compiles bench/kquants/SOURCE with CKernels' kernel
# files and the toolchain's clang (runtime CPU dispatch as in the package), runs it with ARGS,
# and writes its JSON to OUT_JSON with the machine's model name and the date added.
c_harness_run() {
  local out="$1" source="$2"; shift 2
  local tmp K=Sources/CKernels
  tmp="$(mktemp -d)"
  # shellcheck disable=SC2086  # HARNESS_FLAGS: extra compiler and linker words (bench/prefill_products.sh)
  clang -O3 -I"$K/include" -o "$tmp/harness" "bench/kquants/$source" "$K"/qrows.c "$K"/qrows_ordered.c "$K"/kquants.c "$K"/matvec.c \
    "$K"/matvec_q8.c "$K"/gemm_q16.c "$K"/gemm_q16_narrow.c "$K"/gemm_q8.c "$K"/engine.c "$K"/kernels.c "$K"/memory.c \
    "$K"/attention.c -lm -lpthread ${HARNESS_FLAGS:-}
  mkdir -p "$(dirname "$out")"
  "$tmp/harness" "$@" > "$tmp/out.json"
  python3 - "$tmp/out.json" "$out" <<'PY'
import datetime, json, subprocess, sys
r = json.load(open(sys.argv[1]))
r["machine"] = subprocess.run("lscpu | grep 'Model name' | cut -d: -f2", shell=True, capture_output=True, text=True).stdout.strip()
import os
r["blasCore"] = os.environ.get("OPENBLAS_CORETYPE", "")
r["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
json.dump(r, open(sys.argv[2], "w"), indent=1)
PY
  rm -rf "$tmp"
}
