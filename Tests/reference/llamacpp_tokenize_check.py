#!/usr/bin/env python3
"""Cross-checks tokenizer_golden.json (HF tokenizers) against llama.cpp's own llama_tokenize.

Needs a llama.cpp build (bench/llamacpp_baseline.sh leaves one in ~/.cache/kvstash/llamacpp).
Compiles llamacpp_tokenize.c against it and compares ids for every golden string, with special
tokens parsed and not. Prints the differences; exit status 1 if there are any. With --spm, checks spm_golden.json
(sentencepiece) instead, on a vocabulary-only `llama` GGUF written by spm_reference.py.
Usage: python3 Tests/reference/llamacpp_tokenize_check.py [--spm | MODEL.gguf]
"""
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LLAMA = Path(os.environ.get("LLAMACPP_DIR", Path.home() / ".cache/kvstash/llamacpp"))
SPM = "--spm" in sys.argv
MODEL = sys.argv[1] if len(sys.argv) > 1 and not SPM else os.environ.get(
    "KVSTASH_MODEL", str(Path.home() / ".cache/kvstash/models/SmolLM2-135M-Instruct.Q4_1.gguf"))


def main():
    inc = next(LLAMA.glob("src/**/include/llama.h")).parent
    ggml_inc = next(LLAMA.glob("src/**/ggml/include/ggml.h")).parent
    libdir = LLAMA / "build/bin"
    exe = Path("/tmp/kvstash_llamacpp_tokenize")
    subprocess.run(["cc", "-O1", "-o", exe, HERE / "llamacpp_tokenize.c", f"-I{inc}", f"-I{ggml_inc}",
                    f"-L{libdir}", "-lllama", f"-Wl,-rpath,{libdir}"], check=True)
    model = MODEL
    if SPM:
        sys.path.insert(0, str(HERE))
        import spm_reference
        golden = json.loads((HERE / "spm_golden.json").read_text())
        model = "/tmp/kvstash_spm_vocab.gguf"
        spm_reference.write_gguf(Path(model), golden["vocab"])
        modes = ((0, golden["ids"]), (1, golden["ids_parse_special"]))
    else:
        golden = json.loads((HERE / "tokenizer_golden.json").read_text())
        modes = ((1, golden["ids"][golden["pre"]]), (0, golden["ids_no_parse_special"]))
    names = sorted(golden["strings"])
    payload = b"\0".join(golden["strings"][n].encode() for n in names)
    bad = checked = 0
    for parse_special, expected in modes:
        out = subprocess.run([exe, model, str(parse_special)], input=payload, capture_output=True, check=True)
        lines = out.stdout.decode().split("\n")
        for name, line in zip(names, lines):
            if name not in expected:
                continue
            checked += 1
            got = [int(x) for x in line.split()]
            if got != expected[name]:
                bad += 1
                print(f"DIFF parse_special={parse_special} {name}: llama.cpp {got[:20]}... HF {expected[name][:20]}...")
    print(f"{checked - bad}/{checked} strings: llama.cpp ids == golden ids")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
