#!/usr/bin/env python3
"""Merges a continuation run's perplexity windows (`codec-bench real --first-window W`)
into bench/results/codec-real.json. Every figure is a sum over scored tokens (log-PPL,
KL, top-1 matches) or over context tokens (bytes), so merging is exact.

    bench/codec_merge_ppl.py bench/results/codec-real.json bench/results/codec-real-windows-from-32.json
"""
import json
import math
import sys

main_path, extra_path = sys.argv[1], sys.argv[2]
report = json.load(open(main_path))
a, b = report["perplexity"], json.load(open(extra_path))
assert a["windows"] * a["scoredPerWindow"] == a["scoredTokens"]
na, nb = a["scoredTokens"], b["scoredTokens"]
n = na + nb
ctx_a, ctx_b = a["windows"] * a["contextTokens"], b["windows"] * b["contextTokens"]


def mean(x, y, wa, wb):
    return (x * wa + y * wb) / (wa + wb)


base = math.exp(mean(math.log(a["baselinePPL"]), math.log(b["baselinePPL"]), na, nb))
codecs = []
for ca, cb in zip(a["codecs"], b["codecs"]):
    assert ca["label"] == cb["label"]
    ppl = math.exp(mean(math.log(ca["ppl"]), math.log(cb["ppl"]), na, nb))
    codecs.append({
        "label": ca["label"],
        "bytesPerToken": mean(ca["bytesPerToken"], cb["bytesPerToken"], ctx_a, ctx_b),
        "ratioToF16": mean(ca["ratioToF16"], cb["ratioToF16"], ctx_a, ctx_b),
        "ppl": ppl,
        "deltaPPL": (ppl - base) / base,
        "meanKL": mean(ca["meanKL"], cb["meanKL"], na, nb),
        "top1": mean(ca["top1"], cb["top1"], na, nb),
    })
merged = dict(a, scoredTokens=n, windows=a["windows"] + b["windows"], tokensUsed=b["tokensUsed"],
              baselinePPL=base, seconds=a["seconds"] + b["seconds"],
              f32RoundTripExact=a["f32RoundTripExact"] and b["f32RoundTripExact"], codecs=codecs,
              mergedRuns=[{k: v for k, v in a.items() if k != "codecs"}, {k: v for k, v in b.items() if k != "codecs"}])
report["perplexity"] = merged
json.dump(report, open(main_path, "w"), indent=2, sort_keys=True)
print(f"PPL over {n} tokens, f32 {base:.4f}")
for c in codecs:
    print(f"| {c['label']} | {c['bytesPerToken']:.0f} | {c['ratioToF16']:.3f} | {c['ppl']:.4f} | "
          f"{100 * c['deltaPPL']:+.3f}% | {c['meanKL']:.2e} | {100 * c['top1']:.2f}% |")
