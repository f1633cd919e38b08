#!/usr/bin/env python3
"""Cross-checks tokenizer_golden.json (HF tokenizers) against llama.cpp's own llama_tokenize.

Needs a llama.cpp build (bench/llamacpp_baseline.sh leaves one in ~/.cache/kvstash/llamacpp).
Compiles llamacpp_tokenize.c against it and compares ids for every golden string, with special
tokens parsed and not. Prints the differences; exit status 1 if there are any.
Usage: python3 Tests/reference/llamacpp_tokenize_check.py [MODEL.gguf]
"""
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LLAMA = Path(os.environ.get("LLAMACPP_DIR", Path.home() / ".cache/kvstash/llamacpp"))
MODEL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "KVSTASH_MODEL", str(Path.home() / ".cache/kvstash/models/SmolLM2-135M-Instruct.Q4_1.gguf"))


def main():
    inc = next(LLAMA.glob("src/**/include/llama.h")).parent
    ggml_inc = next(LLAMA.glob("src/**/ggml/include/ggml.h")).parent
    libdir = LLAMA / "build/bin"
    exe = Path("/tmp/kvstash_llamacpp_tokenize")
    subprocess.run(["cc", "-O1", "-o", exe, HERE / "llamacpp_tokenize.c", f"-I{inc}", f"-I{ggml_inc}",
                    f"-L{libdir}", "-lllama", f"-Wl,-rpath,{libdir}"], check=True)
    golden = json.loads((HERE / "tokenizer_golden.json").read_text())
    names = sorted(golden["strings"])
    payload = b"\0".join(golden["strings"][n].encode() for n in names)
    bad = 0
    for parse_special, expected in ((1, golden["ids"][golden["pre"]]), (0, golden["ids_no_parse_special"])):
        out = subprocess.run([exe, MODEL, str(parse_special)], input=payload, capture_output=True, check=True)
        lines = out.stdout.decode().split("\n")
        for name, line in zip(names, lines):
            if name not in expected:
                continue
            got = [int(x) for x in line.split()]
            if got != expected[name]:
                bad += 1
                print(f"DIFF parse_special={parse_special} {name}: llama.cpp {got[:20]}... HF {expected[name][:20]}...")
    checked = len(names) + len(golden["ids_no_parse_special"])
    print(f"{checked - bad}/{checked} strings: llama.cpp ids == golden ids")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
