#!/usr/bin/env python3
"""Tokenizer throughput: `kvstash tokenize --bench` versus Hugging Face `tokenizers` (Rust) on the
same vocabulary, same texts, same run. Writes bench/results/tokenizer.json and prints a markdown table.

Usage: python3 bench/tokenizer_bench.py KVSTASH_BIN [MODEL.gguf]   (bench/tokenizer_bench.sh builds and calls it)
"""
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests/reference"))
import tokenizer_reference as ref  # noqa: E402
from gguf import GGUFReader  # noqa: E402


def corpora(tmp: Path):
    gpl = Path("/usr/share/common-licenses/GPL-3").read_text()
    py = "".join(p.read_text(errors="replace") for p in sorted(Path("/usr/lib/python3.11").glob("*.py")))[:2_000_000]
    rnd = random.Random(1)
    alpha = "abcdefghijklmnopqrstuvwxyzéèàüößçñ你好世界日本語한국어0123456789"
    words = ["".join(rnd.choice(alpha) for _ in range(rnd.randint(1, 10))) for _ in range(300_000)]
    texts = {
        "english_prose (GPL-3 x30)": gpl * 30,
        "python_source (stdlib, 2 MB)": py,
        "random_words (multilingual, no repeats)": " ".join(words),
    }
    out = {}
    for name, text in texts.items():
        p = tmp / (name.split(" ")[0] + ".txt")
        p.write_text(text)
        out[name] = (p, text)
    return out


def main():
    binary = sys.argv[1]
    model = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("KVSTASH_MODEL", str(ref.DEFAULT_MODEL))
    r = GGUFReader(model)
    tk = ref.build(list(ref.field(r, "tokenizer.ggml.tokens")),
                   [int(t) for t in ref.field(r, "tokenizer.ggml.token_type")],
                   list(ref.field(r, "tokenizer.ggml.merges")), "smollm")
    tmp = Path("/tmp/kvstash_tokbench")
    tmp.mkdir(exist_ok=True)
    rows = []
    for name, (path, text) in corpora(tmp).items():
        out = subprocess.run([binary, "tokenize", "--model", model, "--file", str(path), "--bench", "3"],
                             capture_output=True, check=True, text=True)
        ours = json.loads(out.stdout)
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            n_hf = len(tk.encode(text, add_special_tokens=False).ids)
            best = min(best, time.perf_counter() - t0)
        nbytes = len(text.encode())
        ids = json.loads(subprocess.run([binary, "tokenize", "--model", model, "--file", str(path), "--json"],
                                        capture_output=True, check=True, text=True).stdout)["ids"]
        same = ids == tk.encode(text, add_special_tokens=False).ids
        rows.append({"corpus": name, "bytes": nbytes, "tokens": ours["tokens"], "tokens_hf": n_hf,
                     "ids_identical_to_hf": same,
                     "kvstash_mb_s": ours["mb_per_s"], "hf_tokenizers_mb_s": nbytes / best / 1e6,
                     "ratio_kvstash_over_hf": ours["mb_per_s"] / (nbytes / best / 1e6)})
    cpu = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True)
                .stdout.splitlines() if l.startswith("Model name")), platform.processor())
    result = {"machine": cpu, "threads": 1, "blas_core": "n/a (no BLAS)", "load_average": os.getloadavg(),
              "note": "other helpers were building and benchmarking on the same 2 cores", "rows": rows}
    (ROOT / "bench/results/tokenizer.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"Machine: {cpu}; 1 thread; load average {os.getloadavg()[0]:.1f} during the run\n")
    print("| corpus | bytes | tokens | ids == HF | kvstash MB/s | HF tokenizers MB/s | ratio |")
    print("| --- | ---: | ---: | :---: | ---: | ---: | ---: |")
    for x in rows:
        print(f"| {x['corpus']} | {x['bytes']:,} | {x['tokens']:,} | {'yes' if x['ids_identical_to_hf'] else 'NO'} | "
              f"{x['kvstash_mb_s']:.2f} | "
              f"{x['hf_tokenizers_mb_s']:.2f} | {x['ratio_kvstash_over_hf']:.2f} |")


if __name__ == "__main__":
    main()
