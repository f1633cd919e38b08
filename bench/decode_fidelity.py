#!/usr/bin/env python3
"""Fidelity of decode on quantized activations against decode on f32 activations, each
measured against the float64 numpy reference forward
(Tests/reference/reference_forward.py). Same corpus as the codec quality bench
(bench/codec_quality.sh): window w is `context` tokens prefilled, then `scored` tokens fed
one decode step at a time (kvstash-enginebench --teacher-force); the next-token
distribution after each step is compared with the reference's: mean and max
KL(reference || engine) and top-1 agreement, for each KVSTASH_DECODE_ACTIVATIONS mode:
auto (the default: 16-bit input codes for every tensor with an integer kernel), int8 (8-bit
codes on the interleaved Q4_1/Q8_0/Q5_0 copies, f32 input elsewhere) and f32.

With --score-by prefill the scored tokens go through one prefill after the context instead
(more than 32 rows: the prefill products), and the modes are those of KVSTASH_PREFILL_PRODUCT:
auto (16-bit input codes against packed integer weight codes where the CPU has AVX-512 VNNI),
int8 (8-bit input codes against the same weight codes, llama.cpp's input precision) and f32
(BLAS sgemm on the dequantized weights).

Usage: bench/decode_fidelity.py --model GGUF --engine PATH/kvstash-enginebench
       [--windows 3] [--context 512] [--scored 128] [--score-by decode|prefill] [--out JSON]
Writes bench/results/decode-fidelity.json (prefill-fidelity.json) unless --out says otherwise."""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "reference"))
from reference_forward import Model, build_tokenizer  # noqa: E402
from kv_layout_fidelity import log_softmax  # noqa: E402


def corpus():
    import pydoc_data.topics as t
    gpl = open("/usr/share/common-licenses/GPL-3", encoding="utf-8").read()
    return gpl + "\n\n" + "\n\n".join(t.topics[k] for k in sorted(t.topics)) + "\n"


def corpus_ids(model, path, text):
    """Token ids of `text`: the reference's byte-level BPE, or for a SentencePiece vocabulary
    (gemma3) the sentencepiece reference of Tests/reference/gemma3_tokenizer_reference.py on
    the first 12,000 characters (enough for 3 windows of 640), with BOS."""
    import gguf
    if gguf.GGUFReader(path).fields["tokenizer.ggml.model"].contents() != "llama":
        return build_tokenizer(model).encode(text).ids
    import gemma3_tokenizer_reference as g
    v = g.load_vocab(path)
    user_defined = {p: i for i, (p, ty) in enumerate(zip(v["tokens"], v["types"])) if ty == 4}
    return ([v["bos"]] if v["add_bos"] else []) + g.encode(g.build_processor(v), user_defined, text[:12000])


def engine_logprobs(engine, model, tokens_file, context, score_by, mode, vocab, tmp):
    out = os.path.join(tmp, f"logits-{mode}.f32")
    variable = "KVSTASH_PREFILL_PRODUCT" if score_by == "prefill" else "KVSTASH_DECODE_ACTIVATIONS"
    env = dict(os.environ, **{variable: mode})
    env.pop("OPENBLAS_CORETYPE", None)
    subprocess.run([engine, "--model", model, "--teacher-force", tokens_file, "--context", str(context),
                    "--score-by", score_by, "--logits-out", out], check=True, env=env)
    return log_softmax(np.fromfile(out, dtype="<f4").astype(np.float64).reshape(-1, vocab))


def compare(ref, got):
    kl = (np.exp(ref) * (ref - got)).sum(axis=1)
    return {"meanKL": float(kl.mean()), "maxKL": float(kl.max()),
            "top1": float((got.argmax(axis=1) == ref.argmax(axis=1)).mean())}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--engine", required=True)
    ap.add_argument("--windows", type=int, default=3)
    ap.add_argument("--context", type=int, default=512)
    ap.add_argument("--scored", type=int, default=128)
    ap.add_argument("--score-by", choices=("decode", "prefill"), default="decode")
    ap.add_argument("--out")
    a = ap.parse_args()
    a.out = a.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", f"{a.score_by}-fidelity.json")
    modes = ("auto", "int8", "f32")
    started = time.time()
    model = Model(a.model)
    ids = corpus_ids(model, a.model, corpus())
    width = a.context + a.scored
    assert a.windows * width <= len(ids), "corpus too short"
    windows = [ids[w * width:(w + 1) * width] for w in range(a.windows)]
    with tempfile.TemporaryDirectory() as tmp:
        tokens_file = os.path.join(tmp, "windows.txt")
        with open(tokens_file, "w") as f:
            f.write("\n".join(" ".join(map(str, w)) for w in windows) + "\n")
        ref = []
        for w in windows:
            cache = model.new_cache()
            model.forward(w[:a.context], cache)
            ref.append(log_softmax(model.forward(w[a.context:], cache, all_logits=True)))
            print(f"reference window {len(ref)}/{a.windows} [{time.time() - started:.0f} s]", flush=True)
        ref = np.concatenate(ref)
        vocab = ref.shape[1]
        got = {m: engine_logprobs(a.engine, a.model, tokens_file, a.context, a.score_by, m, vocab, tmp) for m in modes}
    cpu = subprocess.run(["sh", "-c", "lscpu | grep 'Model name' | sed 's/.*: *//'"],
                         capture_output=True, text=True).stdout.strip()
    report = {
        "what": ("engine logits of the scored tokens in one prefill after the context" if a.score_by == "prefill"
                 else "engine decode logits (one token per step)") + " vs the float64 reference forward",
        "machine": cpu, "model": os.path.basename(a.model),
        "corpus": "GPL-3 then pydoc_data.topics, as bench/codec_quality.sh", "windows": a.windows,
        "contextTokens": a.context, "scoredPerWindow": a.scored, "scoredTokens": len(ref),
        "seconds": time.time() - started,
        "vsReference": {m: compare(ref, logits) for m, logits in got.items()},
        "vsF32": {m: compare(got["f32"], got[m]) for m in modes if m != "f32"},
        "command": "bench/decode_fidelity.py " + " ".join(sys.argv[1:]),
    }
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps({k: report[k] for k in ("vsReference", "vsF32")}, indent=2))


if __name__ == "__main__":
    main()
