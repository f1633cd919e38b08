#!/usr/bin/env python3
"""SentencePiece encode with and without the cuts into segments
(docs/decisions/094-sentencepiece-segments.md), Gemma 3's vocabulary. Processes alternate between
`kvstash tokenize --bench` on the default (segmented) path, the same build with
`KVSTASH_SPM_ENCODE=whole` (whole-fragment merges, the algorithm before), and optionally older
builds (`--other NAME=BIN`, repeatable). Writes bench/results/tokenizer-spm-segments.json.

Texts: GPL-3 cut at a line end to ~3.5K Gemma tokens (~16 KB), and its first 12 KB as HTML
(paragraphs in <li><p>, <b>, <a>: Gemma 3 has 6,321 special tokens starting with `<`).
Three timings of `Tokenizer.encode` on a text, each in its own process:
  steady  fastest of --runs calls (segmented: every segment remembered from the first call)
  primed  first call after encoding other texts (the other licenses): a warm server, a new document
  cold    first call of a fresh process
and the time `Tokenizer(gguf:)` took in the steady processes.

Usage: python3 bench/spm_segments_bench.py KVSTASH_BIN [--other before=OLD_KVSTASH_BIN] [--rounds 7]
(bench/spm_segments_bench.sh builds and calls it; run it under the machine's build lock.)
Builds without `--prime` (before this bench existed) get no primed timing.
"""
import argparse
import html
import json
import os
import platform
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LICENSES = Path("/usr/share/common-licenses")


def texts(tmp: Path):
    """The texts to encode, and the priming text."""
    gpl = (LICENSES / "GPL-3").read_text()
    cut = gpl[:16_400]
    out = {"GPL-3 (16 KB)": cut[:cut.rfind("\n") + 1]}
    paras = [p for p in gpl[:12_000].split("\n\n") if p.strip()]
    rows = [f'<li><p class="c{i % 5}"><b>{i}.</b> {html.escape(p).replace(chr(10), "<br>" + chr(10))} '
            f'<a href="#s{i}">link</a></p></li>' for i, p in enumerate(paras)]
    out["GPL-3 as HTML (16 KB)"] = "\n".join(["<html><body><ul>", *rows, "</ul></body></html>"])
    paths = {}
    for i, (name, text) in enumerate(out.items()):
        paths[name] = tmp / f"text{i}.txt"
        paths[name].write_text(text)
    prime = tmp / "other_licenses.txt"
    prime.write_text("".join((LICENSES / n).read_text() for n in ("Apache-2.0", "MPL-2.0", "Artistic", "GFDL-1.3")))
    return paths, prime


def tokenize(binary, args, whole):
    env = {k: v for k, v in os.environ.items() if k != "KVSTASH_SPM_ENCODE"}
    if whole:
        env["KVSTASH_SPM_ENCODE"] = "whole"
    out = subprocess.run([binary, "tokenize", *args], capture_output=True, check=True, text=True, env=env)
    return json.loads(out.stdout)


def measure(variants, base, prime, rounds, runs):
    ms = {name: {"steady": [], "primed": [], "cold": [], "tokenizer_load": []} for name in variants}
    for r in range(rounds):
        for name in (list(variants) if r % 2 == 0 else list(reversed(variants))):
            b, whole, primes = variants[name]
            x = tokenize(b, base + ["--bench", str(runs)], whole)
            ms[name]["steady"].append(x["best_seconds"] * 1e3)
            ms[name]["tokenizer_load"].append(x["load_seconds"] * 1e3)
            ms[name]["cold"].append(tokenize(b, base + ["--bench", "1"], whole)["best_seconds"] * 1e3)
            if primes:
                x = tokenize(b, base + ["--bench", "1", "--prime", str(prime)], whole)
                ms[name]["primed"].append(x["first_seconds"] * 1e3)
    return ms


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--other", action="append", default=[], help="NAME=KVSTASH_BIN of another build")
    ap.add_argument("--model", default="gemma3")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    tmp = Path("/tmp/kvstash_spmbench")
    tmp.mkdir(exist_ok=True)
    paths, prime = texts(tmp)
    variants = {"segmented": (a.binary, False, True), "whole (same build)": (a.binary, True, True)}
    for spec in a.other:
        name, binary = spec.split("=", 1)
        help_text = subprocess.run([binary, "tokenize", "--help"], capture_output=True, text=True).stdout
        variants[name] = (binary, False, "--prime" in help_text)
    rows = []
    for text_name, path in paths.items():
        base = ["--model", a.model, "--file", str(path)]
        ids = {name: tokenize(b, base + ["--json"], w)["ids"] for name, (b, w, _) in variants.items()}
        ms = measure(variants, base, prime, a.rounds, a.runs)
        for name in variants:
            row = {"text": text_name, "bytes": path.stat().st_size, "variant": name,
                   "ids_equal_segmented": ids[name] == ids["segmented"], "tokens": len(ids[name])}
            for k, v in ms[name].items():
                row[f"{k}_ms"] = [round(x, 3) for x in v]
                row[f"{k}_median_ms"] = round(statistics.median(v), 3) if v else None
            rows.append(row)
    cpu = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True)
                .stdout.splitlines() if l.startswith("Model name")), platform.processor())
    result = {"machine": cpu, "cores": os.cpu_count(), "threads": 1, "model": a.model,
              "prime": "Apache-2.0, MPL-2.0, Artistic, GFDL-1.3", "processes_per_cell": a.rounds,
              "load_average": os.getloadavg(), "rows": rows}
    (ROOT / "bench/results/tokenizer-spm-segments.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"Machine: {cpu}; 1 thread; load average {os.getloadavg()[0]:.1f}; medians of {a.rounds} processes\n")
    print("| text | tokens | variant | ids equal | steady ms | primed ms | cold ms | tokenizer load ms |")
    print("| --- | ---: | --- | :---: | ---: | ---: | ---: | ---: |")
    for x in rows:
        cell = lambda k: "n/a" if x[f"{k}_median_ms"] is None else f"{x[f'{k}_median_ms']:.2f}"  # noqa: E731
        print(f"| {x['text']} | {x['tokens']:,} | {x['variant']} | {'yes' if x['ids_equal_segmented'] else 'NO'} | "
              f"{cell('steady')} | {cell('primed')} | {cell('cold')} | {cell('tokenizer_load')} |")


if __name__ == "__main__":
    main()
