#!/usr/bin/env python3
"""Cross-checks a goldens file of reference_forward.py against llama.cpp's own greedy decode.

Needs a llama.cpp build (bench/llamacpp_baseline.sh leaves one in ~/.cache/kvstash/llamacpp).
Compiles llamacpp_greedy.c against it, feeds every prompt's token ids, and compares llama.cpp's
greedy ids with the golden ones (llama.cpp quantizes activations to 8 bits in its K-quant and
Q8_0 products, so a near-tie can go the other way: the first difference is printed).
Usage: python3 Tests/reference/llamacpp_greedy_check.py GOLDENS.json MODEL.gguf
"""
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llamacpp_tokenize_check import compile_against_llamacpp  # noqa: E402


def main():
    goldens, model = json.loads(Path(sys.argv[1]).read_text()), sys.argv[2]
    exe = compile_against_llamacpp("llamacpp_greedy")
    prompts = goldens["prompts"]
    payload = b"\0".join(" ".join(map(str, p["prompt_tokens"])).encode() for p in prompts)
    out = subprocess.run([exe, model, str(goldens["generated_tokens"])], input=payload, capture_output=True,
                         check=True).stdout.decode().split("\n")
    same = 0
    for p, line in zip(prompts, out):
        got, want = [int(x) for x in line.split()], p["greedy_tokens"]
        first = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), None)
        same += first is None
        print(f"{p['name']}: " + ("equal" if first is None else f"first difference at token {first}: "
                                  f"llama.cpp {got[first:first + 5]} reference {want[first:first + 5]}"))
    print(f"{same}/{len(prompts)} prompts: llama.cpp greedy ids == golden ids")
    sys.exit(0 if same == len(prompts) else 1)


if __name__ == "__main__":
    main()
