#!/usr/bin/env python3
"""Cross-checks tokenizer_golden.json (HF tokenizers) against llama.cpp's own llama_tokenize.

Needs a llama.cpp build (bench/llamacpp_baseline.sh leaves one in ~/.cache/kvstash/llamacpp).
Compiles llamacpp_tokenize.c against it and compares ids for every golden string, with special
tokens parsed and not. Prints the differences; exit status 1 if there are any. With --spm, checks spm_golden.json
(sentencepiece) instead, on a vocabulary-only `llama` GGUF written by spm_reference.py; with
--gemma3, Tests/EngineTests/Resources/gemma3_tokenizer_golden.json on Gemma 3 270M.
Usage: python3 Tests/reference/llamacpp_tokenize_check.py [--spm | --gemma3 | MODEL.gguf]
"""
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
LLAMA = Path(os.environ.get("LLAMACPP_DIR", Path.home() / ".cache/kvstash/llamacpp"))
SPM = "--spm" in sys.argv
GEMMA3 = "--gemma3" in sys.argv
MODEL = sys.argv[1] if len(sys.argv) > 1 and not (SPM or GEMMA3) else os.environ.get(
    "KVSTASH_MODEL", str(Path.home() / ".cache/kvstash/models/SmolLM2-135M-Instruct.Q4_1.gguf"))


def compile_against_llamacpp(source):
    """Builds Tests/reference/SOURCE.c against the llama.cpp build; returns the executable."""
    inc = next(LLAMA.glob("src/**/include/llama.h")).parent
    ggml_inc = next(LLAMA.glob("src/**/ggml/include/ggml.h")).parent
    libdir = next(d for d in (LLAMA / "build/bin", LLAMA / "build-avx2/bin") if d.exists())
    exe = Path(f"/tmp/kvstash_{source}")
    subprocess.run(["cc", "-O1", "-o", exe, HERE / f"{source}.c", f"-I{inc}", f"-I{ggml_inc}",
                    f"-L{libdir}", "-lllama", f"-Wl,-rpath,{libdir}"], check=True)
    return exe


def main():
    exe = compile_against_llamacpp("llamacpp_tokenize")
    model = MODEL
    if SPM:
        sys.path.insert(0, str(HERE))
        import spm_reference
        golden = json.loads((HERE / "spm_golden.json").read_text())
        model = "/tmp/kvstash_spm_vocab.gguf"
        spm_reference.write_gguf(Path(model), golden["vocab"])
        modes = ((0, golden["ids"]), (1, golden["ids_parse_special"]))
    elif GEMMA3:
        golden = json.loads((HERE.parent / "EngineTests/Resources/gemma3_tokenizer_golden.json").read_text())
        model = os.environ.get("KVSTASH_GEMMA3_MODEL", str(Path.home() / ".cache/kvstash/models/gemma-3-270m-q4_k_m.gguf"))
        # The golden ids start with the BOS that the GGUF asks for; llama_tokenize adds none here.
        modes = ((0, {k: v[1:] for k, v in golden["ids"].items()}),
                 (1, {k: v[1:] for k, v in golden["ids_parse_special"].items()}))
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
