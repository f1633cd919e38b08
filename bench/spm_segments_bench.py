#!/usr/bin/env python3
"""SentencePiece encode with and without the cuts into segments
(docs/decisions/094-sentencepiece-segments.md), Gemma 3's vocabulary. Processes alternate between
`kvstash tokenize --bench` on the default (segmented) path, the same build with
`KVSTASH_SPM_ENCODE=whole` (whole-fragment merges, the algorithm before), and optionally a
`--before` binary built from the tree before the change. Writes bench/results/tokenizer-spm-segments.json.

Three timings of `Tokenizer.encode` on the text, each in its own process:
  steady  fastest of --runs calls (segmented: every segment remembered from the first call)
  primed  first call after encoding other texts (the other licenses): a warm server, a new document
  cold    first call of a fresh process
and the time `Tokenizer(gguf:)` took in the steady processes.

Usage: python3 bench/spm_segments_bench.py KVSTASH_BIN [--before OLD_KVSTASH_BIN] [--rounds 5]
(bench/spm_segments_bench.sh builds and calls it; run it under the machine's build lock.)
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LICENSES = Path("/usr/share/common-licenses")


def texts(tmp: Path):
    """GPL-3 cut at a line end to ~3.5K Gemma tokens (~16 KB), and the priming text."""
    gpl = (LICENSES / "GPL-3").read_text()[:16_400]
    target = tmp / "gpl3_16k.txt"
    target.write_text(gpl[:gpl.rfind("\n") + 1])
    prime = tmp / "other_licenses.txt"
    prime.write_text("".join((LICENSES / n).read_text() for n in ("Apache-2.0", "MPL-2.0", "Artistic", "GFDL-1.3")))
    return target, prime


def tokenize(binary, args, whole):
    env = {k: v for k, v in os.environ.items() if k != "KVSTASH_SPM_ENCODE"}
    if whole:
        env["KVSTASH_SPM_ENCODE"] = "whole"
    out = subprocess.run([binary, "tokenize", *args], capture_output=True, check=True, text=True, env=env)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--before", help="kvstash built from the tree before the change (no --prime)")
    ap.add_argument("--model", default="gemma3")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=20)
    a = ap.parse_args()
    tmp = Path("/tmp/kvstash_spmbench")
    tmp.mkdir(exist_ok=True)
    target, prime = texts(tmp)
    base = ["--model", a.model, "--file", str(target)]
    variants = {"segmented": (a.binary, False), "whole (same build)": (a.binary, True)}
    if a.before:
        variants["before (old build)"] = (a.before, False)
    ids = {name: tokenize(b, base + ["--json"], w)["ids"] for name, (b, w) in variants.items()}
    ms = {name: {"steady": [], "primed": [], "cold": [], "tokenizer_load": []} for name in variants}
    for r in range(a.rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in order:
            b, w = variants[name]
            x = tokenize(b, base + ["--bench", str(a.runs)], w)
            ms[name]["steady"].append(x["best_seconds"] * 1e3)
            ms[name]["tokenizer_load"].append(x["load_seconds"] * 1e3)
            ms[name]["cold"].append(tokenize(b, base + ["--bench", "1"], w)["best_seconds"] * 1e3)
            if name != "before (old build)":
                x = tokenize(b, base + ["--bench", "1", "--prime", str(prime)], w)
                ms[name]["primed"].append(x["first_seconds"] * 1e3)
    first = next(iter(variants))
    rows = []
    for name in variants:
        row = {"variant": name, "ids_equal_segmented": ids[name] == ids[first], "tokens": len(ids[name])}
        for k, v in ms[name].items():
            row[f"{k}_ms"] = [round(x, 3) for x in v]
            row[f"{k}_median_ms"] = round(statistics.median(v), 3) if v else None
        rows.append(row)
    cpu = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True)
                .stdout.splitlines() if l.startswith("Model name")), platform.processor())
    result = {"machine": cpu, "cores": os.cpu_count(), "threads": 1, "model": a.model,
              "text": f"GPL-3, first {target.stat().st_size} bytes", "prime": "Apache-2.0, MPL-2.0, Artistic, GFDL-1.3",
              "processes_per_cell": a.rounds, "load_average": os.getloadavg(), "rows": rows}
    (ROOT / "bench/results/tokenizer-spm-segments.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"Machine: {cpu}; 1 thread; load average {os.getloadavg()[0]:.1f}; "
          f"{target.stat().st_size:,} bytes, {len(ids[first]):,} tokens; medians of {a.rounds} processes\n")
    print("| variant | ids equal | steady ms | primed ms | cold ms | tokenizer load ms |")
    print("| --- | :---: | ---: | ---: | ---: | ---: |")
    for x in rows:
        cell = lambda k: "n/a" if x[f"{k}_median_ms"] is None else f"{x[f'{k}_median_ms']:.2f}"  # noqa: E731
        print(f"| {x['variant']} | {'yes' if x['ids_equal_segmented'] else 'NO'} | {cell('steady')} | "
              f"{cell('primed')} | {cell('cold')} | {cell('tokenizer_load')} |")


if __name__ == "__main__":
    main()
