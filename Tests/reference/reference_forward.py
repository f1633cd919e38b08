#!/usr/bin/env python3
"""Independent numpy reference forward pass of Llama-family GGUF models (llama, qwen2).

It shares no code with the Swift engine: the GGUF file is read and dequantized with the
PyPI `gguf` package, and the transformer is written here in float64 numpy from the
Llama paper / llama.cpp semantics (RMSNorm, RoPE on adjacent pairs for llama or NEOX
halves for qwen2, GQA causal softmax attention, SwiGLU MLP, tied or separate output).

Commands:
  logits  --model M --tokens 1,2,3         -> {"logits": [[vocab floats] per position]}
  greedy  --model M --tokens 1,2,3 -n N    -> {"tokens": [N greedy ids]}
  goldens --model M --out FILE             -> prompts tokenized with the `tokenizers`
            package (built from the GGUF vocab + merges), greedy continuations and the
            top-20 logits of the first step, as JSON for the Swift tests.
"""
import argparse
import json
import sys

import numpy as np
import gguf


class Model:
    # Rounds K (after RoPE) and V as they enter the cache; None keeps float64.
    kv_round = None

    def __init__(self, path):
        self.reader = gguf.GGUFReader(path)
        f = self.reader.fields
        self.meta = {k: v.contents() for k, v in f.items()
                     if k not in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type")}
        a = self.meta["general.architecture"]
        assert a in ("llama", "qwen2"), a
        self.arch = a
        m = lambda k, d=None: self.meta.get(f"{a}.{k}", d)
        self.dim = int(m("embedding_length"))
        self.layers = int(m("block_count"))
        self.heads = int(m("attention.head_count"))
        self.kv_heads = int(m("attention.head_count_kv", self.heads))
        self.head_dim = int(m("attention.key_length", self.dim // self.heads))
        self.n_rot = int(m("rope.dimension_count", self.head_dim))
        self.base = float(m("rope.freq_base", 10000.0))
        self.eps = float(m("attention.layer_norm_rms_epsilon", 1e-5))
        self.neox = a == "qwen2"
        self.w = {}
        for t in self.reader.tensors:
            x = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = [int(d) for d in reversed(t.shape)]  # numpy order: [rows][row length]
            self.w[t.name] = np.asarray(x, dtype=np.float64).reshape(shape)
        self.out = self.w.get("output.weight", self.w["token_embd.weight"])
        self.vocab = self.w["token_embd.weight"].shape[0]

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, positions):
        """x: [n, heads, head_dim]; rotates the first n_rot dims of each head."""
        half = self.n_rot // 2
        freqs = self.base ** (-2.0 * np.arange(half) / self.n_rot)
        ang = np.asarray(positions, dtype=np.float64)[:, None] * freqs[None, :]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        y = x.copy()
        if self.neox:
            a, b = x[..., :half], x[..., half:self.n_rot]
            y[..., :half] = a * c - b * s
            y[..., half:self.n_rot] = a * s + b * c
        else:
            a, b = x[..., 0:self.n_rot:2], x[..., 1:self.n_rot:2]
            y[..., 0:self.n_rot:2] = a * c - b * s
            y[..., 1:self.n_rot:2] = a * s + b * c
        return y

    def new_cache(self):
        return [([], []) for _ in range(self.layers)]  # per layer: lists of post-RoPE K, V blocks

    def forward(self, tokens, cache, all_logits=False):
        """Appends tokens after the cache's positions; returns logits [n or 1, vocab]."""
        start = sum(k.shape[0] for k in cache[0][0])
        n = len(tokens)
        pos = np.arange(start, start + n)
        x = self.w["token_embd.weight"][tokens]
        hd, H, KV = self.head_dim, self.heads, self.kv_heads
        group = H // KV
        mask = np.where(np.arange(start + n)[None, :] <= pos[:, None], 0.0, -np.inf)
        for l in range(self.layers):
            p = f"blk.{l}."
            h = self.rmsnorm(x, self.w[p + "attn_norm.weight"])
            q = h @ self.w[p + "attn_q.weight"].T
            k = h @ self.w[p + "attn_k.weight"].T
            v = h @ self.w[p + "attn_v.weight"].T
            if p + "attn_q.bias" in self.w:
                q, k, v = q + self.w[p + "attn_q.bias"], k + self.w[p + "attn_k.bias"], v + self.w[p + "attn_v.bias"]
            q = self.rope(q.reshape(n, H, hd), pos)
            k = self.rope(k.reshape(n, KV, hd), pos)
            v = v.reshape(n, KV, hd)
            if self.kv_round is not None:  # a cache layout of lower precision (bench/kv_layout_fidelity.py)
                k, v = self.kv_round(k), self.kv_round(v)
            cache[l][0].append(k)
            cache[l][1].append(v)
            K = np.concatenate(cache[l][0])
            V = np.concatenate(cache[l][1])
            out = np.empty((n, H, hd))
            for hh in range(H):
                g = hh // group
                s = q[:, hh, :] @ K[:, g, :].T / np.sqrt(hd) + mask
                s = np.exp(s - s.max(axis=1, keepdims=True))
                s /= s.sum(axis=1, keepdims=True)
                out[:, hh, :] = s @ V[:, g, :]
            x = x + out.reshape(n, H * hd) @ self.w[p + "attn_output.weight"].T
            h = self.rmsnorm(x, self.w[p + "ffn_norm.weight"])
            gate = h @ self.w[p + "ffn_gate.weight"].T
            up = h @ self.w[p + "ffn_up.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ self.w[p + "ffn_down.weight"].T
        rows = x if all_logits else x[-1:]
        return self.rmsnorm(rows, self.w["output_norm.weight"]) @ self.out.T

    def greedy(self, tokens, n):
        cache = self.new_cache()
        logits = self.forward(list(tokens), cache)[-1]
        first = logits
        out = []
        for _ in range(n):
            t = int(np.argmax(logits))
            out.append(t)
            logits = self.forward([t], cache)[-1]
        return out, first


def build_tokenizer(model):
    """A Hugging Face `tokenizers` byte-level BPE built from the GGUF vocab and merges,
    with the `smollm` pre-tokenizer (split digits individually, then GPT-2 byte-level)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, AddedToken
    f = model.reader.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    merges = [tuple(m.split(" ", 1)) for m in f["tokenizer.ggml.merges"].contents()]
    types = f["tokenizer.ggml.token_type"].contents()
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                               ignore_merges=False))
    pre = model.meta.get("tokenizer.ggml.pre")
    assert pre == "smollm", f"reference tokenizer only knows the smollm pre-tokenizer, got {pre}"
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    return tok


CHAT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
PROMPTS = [
    {"name": "raw_france", "chat": None, "text": "The capital of France is"},
    {"name": "chat_bare_france", "chat": "chatml_bare_user_turn",
     "text": "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"},
    {"name": "chat_default_system_france", "chat": "chatml_with_default_system_turn",
     "text": f"<|im_start|>system\n{CHAT_SYSTEM}<|im_end|>\n"
             "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"},
    {"name": "raw_code", "chat": None, "text": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"},
    {"name": "raw_long_over_one_chunk", "chat": None,
     "text": " ".join(f"Item {i}: the quick brown fox number {i * 7 % 13} jumps over {i % 5} lazy dogs."
                      for i in range(40)) + " In summary,"},
]


def goldens(model, n):
    tok = build_tokenizer(model)
    out = {"model_file_name": model.meta.get("general.name"), "reference": "numpy float64, Tests/reference/reference_forward.py",
           "tokenizer": "HF tokenizers BPE from GGUF vocab+merges, smollm pre-tokenizer, special tokens parsed",
           "generated_tokens": n, "prompts": []}
    for p in PROMPTS:
        ids = tok.encode(p["text"]).ids
        gen, first = model.greedy(ids, n)
        top = np.argsort(-first)[:20]
        out["prompts"].append({
            "name": p["name"], "text": p["text"],
            "chat_template_applied": p["chat"] is not None,
            "chat_template_form": p["chat"] or "none (raw text)",
            "prompt_tokens": ids, "greedy_tokens": gen, "greedy_text": tok.decode(gen),
            "first_step_top20": {"ids": [int(i) for i in top], "logits": [float(first[i]) for i in top]},
        })
        print(p["name"], len(ids), repr(tok.decode(gen)), file=sys.stderr)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["logits", "greedy", "goldens"])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tokens", default="")
    ap.add_argument("-n", type=int, default=40)
    ap.add_argument("--out")
    a = ap.parse_args()
    model = Model(a.model)
    ids = [int(t) for t in a.tokens.split(",") if t]
    if a.command == "logits":
        result = {"logits": model.forward(ids, model.new_cache(), all_logits=True).tolist()}
    elif a.command == "greedy":
        result = {"tokens": model.greedy(ids, a.n)[0]}
    else:
        result = goldens(model, a.n)
    text = json.dumps(result, indent=1 if a.command == "goldens" else None, ensure_ascii=False)
    if a.out:
        with open(a.out, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)


if __name__ == "__main__":
    main()
