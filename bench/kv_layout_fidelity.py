#!/usr/bin/env python3
"""Fidelity of the KV cache's in-RAM layout, in the float64 numpy reference forward
(Tests/reference/reference_forward.py): K after RoPE and V rounded to IEEE f16 (the
KVCache layout), bf16, or symmetric int8 (one scale per (token, KV head) row of head_dim
values, or per group of 32 of them, the scale held as f32 or f16; K and V both, or one of
them with the other in f16) as they enter the cache, against the same forward with K and V
kept in float64. Same corpus and windows as the codec quality bench (bench/codec_quality.sh):
window w is `context` tokens, then `scored` tokens whose next-token distributions are
compared: mean KL(full || layout) and top-1 agreement.

Usage: bench/kv_layout_fidelity.py --model GGUF --text FILE [--text FILE] [--windows 4]
Writes bench/results/kv-layout-fidelity.json."""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "reference"))
from reference_forward import Model, build_tokenizer  # noqa: E402


def f16(x):
    return x.astype(np.float16).astype(np.float64)


def bf16(x):
    """Round to nearest even on the top 16 bits of the f32 value."""
    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000).astype(np.uint32)
    return b.view(np.float32).astype(np.float64)


def int8(group, scale_type):
    """Symmetric int8 with one scale per `group` values of a (token, KV head) row
    (group=None: the whole row): scale = max|x| / 127 rounded to `scale_type`, codes =
    round(x / scale) clamped to [-127, 127]; returns codes * scale, as attention would read
    them after dequantizing in registers."""
    def rounding(x):
        shape = x.shape  # [tokens, KV heads, head_dim]
        g = shape[-1] if group is None else group
        xs = x.reshape(shape[:-1] + (shape[-1] // g, g))
        scale = (np.abs(xs).max(axis=-1, keepdims=True) / 127).astype(scale_type).astype(np.float64)
        safe = np.where(scale > 0, scale, 1.0)
        codes = np.clip(np.rint(xs / safe), -127, 127)
        return (codes * scale).reshape(shape)
    return rounding


def log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def scored_logprobs(model, ctx, inp, layout):
    """layout: None (float64 K and V) or (rounding of K, rounding of V), applied as K after
    RoPE and V enter the cache."""
    attend = type(model).attend
    if layout is None:
        model.attend = attend.__get__(model)
    else:
        round_k, round_v = layout
        model.attend = lambda cache, q, k, v, mask, divisor: attend(model, cache, q, round_k(k), round_v(v), mask, divisor)
    cache = model.new_cache()
    model.forward(ctx, cache)
    return log_softmax(model.forward(inp, cache, all_logits=True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", action="append", required=True)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--scored", type=int, default=512)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                                  "kv-layout-fidelity.json"))
    a = ap.parse_args()
    started = time.time()
    model = Model(a.model)
    tok = build_tokenizer(model)
    text = "\n\n".join(open(t, encoding="utf-8").read() for t in a.text)
    ids = tok.encode(text).ids
    width = a.context + a.scored
    assert a.windows * width < len(ids), "corpus too short"
    row8, row8h, g32 = int8(None, np.float32), int8(None, np.float16), int8(32, np.float16)
    layouts = {"f16": (f16, f16), "bf16": (bf16, bf16),
               "int8 row, f32 scale": (row8, row8), "int8 row, f16 scale": (row8h, row8h),
               "int8 g32, f16 scale": (g32, g32),
               "int8 row, f32 scale, K only (V f16)": (row8, f16), "int8 row, f32 scale, V only (K f16)": (f16, row8)}
    acc = {name: {"kl": 0.0, "top1": 0, "maxKL": 0.0} for name in layouts}
    n = 0
    for w in range(a.windows):
        s = w * width
        ctx, inp = ids[s:s + a.context], ids[s + a.context:s + width]
        ref = scored_logprobs(model, ctx, inp, None)
        top = ref.argmax(axis=1)
        for name, layout in layouts.items():
            got = scored_logprobs(model, ctx, inp, layout)
            kl = (np.exp(ref) * (ref - got)).sum(axis=1)
            acc[name]["kl"] += float(kl.sum())
            acc[name]["maxKL"] = max(acc[name]["maxKL"], float(kl.max()))
            acc[name]["top1"] += int((got.argmax(axis=1) == top).sum())
        n += a.scored
        print(f"window {w + 1}/{a.windows}: " + ", ".join(
            f"{k} KL {v['kl'] / n:.3g} top-1 {v['top1'] / n:.5f}" for k, v in acc.items())
            + f" [{time.time() - started:.0f} s]", flush=True)
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | sed 's/.*: *//'"],
                         capture_output=True, text=True).stdout.strip()
    report = {
        "what": "KV cache layout vs float64 K and V, in the float64 numpy reference forward",
        "machine": cpu or platform.processor(), "model": os.path.basename(a.model), "corpus": a.text,
        "corpusTokens": len(ids), "windows": a.windows, "contextTokens": a.context, "scoredPerWindow": a.scored,
        "scoredTokens": n, "seconds": time.time() - started,
        "command": " ".join(["bench/kv_layout_fidelity.py"] + [os.path.basename(x) if os.path.isfile(x) and
                                                                 not x.startswith("/usr/") else x for x in sys.argv[1:]]),
        "layouts": [{"layout": k, "meanKL": v["kl"] / n, "maxKL": v["maxKL"], "top1": v["top1"] / n}
                    for k, v in acc.items()],
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report["layouts"], indent=2))


if __name__ == "__main__":
    main()
