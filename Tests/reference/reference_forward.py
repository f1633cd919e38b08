#!/usr/bin/env python3
"""Independent numpy reference forward pass of Llama-family GGUF models (llama, qwen2, gemma3).

It shares no code with the Swift engine: the GGUF file is read and dequantized with the
PyPI `gguf` package, and the transformer is written here in float64 numpy from the
Llama paper / llama.cpp semantics (RMSNorm, RoPE on adjacent pairs for llama or NEOX
halves for qwen2, GQA causal softmax attention, SwiGLU MLP, tied or separate output).

gemma3 follows llama.cpp's `src/models/gemma3.cpp` (graph and hyperparameters),
`llama-hparams.cpp` and `llama-model.cpp`; each detail is checked there (see `Gemma3`).

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
from pathlib import Path

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
        assert a in ("llama", "qwen2", "gemma3"), a
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
        self.neox = a in ("qwen2", "gemma3")
        self.gemma3 = Gemma3(self.meta, self.layers, self.dim, self.heads, self.head_dim) if a == "gemma3" else None
        self.w = {}
        for t in self.reader.tensors:
            x = gguf.quants.dequantize(t.data, t.tensor_type)
            shape = [int(d) for d in reversed(t.shape)]  # numpy order: [rows][row length]
            self.w[t.name] = np.asarray(x, dtype=np.float64).reshape(shape)
        self.out = self.w.get("output.weight", self.w["token_embd.weight"])
        self.vocab = self.w["token_embd.weight"].shape[0]

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, positions, base=None, scale=1.0):
        """x: [n, heads, head_dim]; rotates the first n_rot dims of each head."""
        half = self.n_rot // 2
        freqs = (base or self.base) ** (-2.0 * np.arange(half) / self.n_rot)
        ang = scale * np.asarray(positions, dtype=np.float64)[:, None] * freqs[None, :]
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
        if self.gemma3:
            return self.gemma3.forward(self, tokens, cache, all_logits)
        start = sum(k.shape[0] for k in cache[0][0])
        n = len(tokens)
        pos = np.arange(start, start + n)
        x = self.w["token_embd.weight"][tokens]
        hd, H, KV = self.head_dim, self.heads, self.kv_heads
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
            out = self.attend(cache[l], q, k, v.reshape(n, KV, hd), mask, np.sqrt(hd))
            x = x + out @ self.w[p + "attn_output.weight"].T
            h = self.rmsnorm(x, self.w[p + "ffn_norm.weight"])
            gate = h @ self.w[p + "ffn_gate.weight"].T
            up = h @ self.w[p + "ffn_up.weight"].T
            x = x + (gate / (1 + np.exp(-gate)) * up) @ self.w[p + "ffn_down.weight"].T
        rows = x if all_logits else x[-1:]
        return self.rmsnorm(rows, self.w["output_norm.weight"]) @ self.out.T

    def attend(self, layer_cache, q, k, v, mask, divisor):
        """Appends k, v ([n, KV, hd]) to the layer's cache; softmax(q K^T / divisor + mask) V
        for every query head of q ([n, H, hd]), as [n, H * hd]."""
        if self.kv_round is not None:  # a cache layout of lower precision (bench/kv_layout_fidelity.py)
            k, v = self.kv_round(k), self.kv_round(v)
        layer_cache[0].append(k)
        layer_cache[1].append(v)
        K, V = np.concatenate(layer_cache[0]), np.concatenate(layer_cache[1])
        n, H, hd = q.shape
        group = H // self.kv_heads
        out = np.empty((n, H, hd))
        for hh in range(H):
            g = hh // group
            s = q[:, hh, :] @ K[:, g, :].T / divisor + mask
            s = np.exp(s - s.max(axis=1, keepdims=True))
            s /= s.sum(axis=1, keepdims=True)
            out[:, hh, :] = s @ V[:, g, :]
        return out.reshape(n, H * hd)

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


class Gemma3:
    """The gemma3 transformer as llama.cpp runs it (all in `src/models/gemma3.cpp` unless said):

    - embeddings scaled by sqrt(n_embd) (`ggml_scale(inpL, sqrtf(n_embd))`);
    - sliding-window layers: `load_swa_pattern(ml, 6)` -> `llama_hparams::set_swa_pattern`
      (llama-hparams.cpp): layer il slides when il % 6 < 5 (every sixth layer, 5, 11, 17, is
      global), unless the GGUF has `gemma3.attention.sliding_window_pattern`; the window is
      `gemma3.attention.sliding_window` with LLAMA_SWA_TYPE_STANDARD, and
      `llama_hparams::is_masked_swa` (llama-hparams.h) hides key p0 from query p1 when
      p1 - p0 >= n_swa, so a query sees itself and the n_swa - 1 positions before it;
    - RoPE NEOX (`llama_model_rope_type`, llama-model.cpp, lists LLM_ARCH_GEMMA3 under
      LLAMA_ROPE_TYPE_NEOX) over the whole head (n_rot = key_length); base per layer from
      `llama_model::get_rope_freq_base`: sliding layers `rope_freq_base_train_swa`
      (`gemma3.rope.freq_base_swa`, default 10000 in llama-hparams.h), global layers
      `gemma3.rope.freq_base`; linear `rope.scaling.factor` only on global layers
      (`get_rope_freq_scale`: sliding layers use `rope_freq_scale_train_swa` = 1);
    - Q and K RMS-normed per head with `attn_q_norm` / `attn_k_norm` before RoPE (QK-norm);
    - attention scale `f_attention_scale` = 1/sqrt(key_length) (1/sqrt(n_embd/n_head) for the
      62-layer 27B), applied to Q; no attention logit softcapping (only gemma2 sets
      `attn_soft_cap`);
    - pre- and post-norms: x += rmsnorm(attn(rmsnorm(x, attn_norm)), post_attention_norm);
      x += rmsnorm(ffn(rmsnorm(x, ffn_norm)), post_ffw_norm); the GGUF norm weights are used
      as stored (`build_norm` multiplies by them);
    - FFN `LLM_FFN_GELU, LLM_FFN_PAR` -> `ggml_geglu_split(gate, up)` = gelu(gate) * up with
      ggml's tanh GELU (`ggml_gelu_f32`, ggml-cpu/vec.h: 0.5x(1 + tanh(sqrt(2/pi) x (1 +
      0.044715 x^2))); llama.cpp's CPU kernel reads it from an f16 table, here it is exact);
    - final RMS norm, output = token embedding when `output.weight` is absent, and final
      logit softcapping only when `gemma3.final_logit_softcapping` is present (none in 270M).
    """

    def __init__(self, meta, layers, dim, heads, head_dim):
        m = lambda k, d=None: meta.get(f"gemma3.{k}", d)
        self.window = int(m("attention.sliding_window", 0))
        pattern = m("attention.sliding_window_pattern")
        if isinstance(pattern, list):
            self.sliding = [bool(p) for p in pattern]
        else:
            n = int(pattern) if pattern is not None else 6
            self.sliding = [self.window > 0 and (n == 0 or il % n < n - 1) for il in range(layers)]
        self.base_global = float(m("rope.freq_base", 10000.0))
        self.base_sliding = float(m("rope.freq_base_swa", 10000.0))
        factor = m("rope.scaling.factor")
        assert m("rope.scaling.type") in (None, "linear", "none"), m("rope.scaling.type")
        self.scale_global = 1.0 / float(factor) if factor else 1.0
        self.attn_scale = 1 / np.sqrt(dim / heads if layers == 62 else head_dim)
        self.softcap = m("final_logit_softcapping")
        self.embed_scale = float(np.float32(np.sqrt(np.float32(dim))))

    @staticmethod
    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * x * (1 + 0.044715 * x * x)))

    def forward(self, model, tokens, cache, all_logits):
        M = model
        start = sum(k.shape[0] for k in cache[0][0])
        n = len(tokens)
        pos = np.arange(start, start + n)
        x = M.w["token_embd.weight"][tokens] * self.embed_scale
        hd, H, KV = M.head_dim, M.heads, M.kv_heads
        keys = np.arange(start + n)[None, :]
        causal = keys <= pos[:, None]
        for l in range(M.layers):
            p = f"blk.{l}."
            slide = self.sliding[l]
            visible = causal & (pos[:, None] - keys < self.window) if slide else causal
            mask = np.where(visible, 0.0, -np.inf)
            h = M.rmsnorm(x, M.w[p + "attn_norm.weight"])
            q = (h @ M.w[p + "attn_q.weight"].T).reshape(n, H, hd)
            k = (h @ M.w[p + "attn_k.weight"].T).reshape(n, KV, hd)
            v = (h @ M.w[p + "attn_v.weight"].T).reshape(n, KV, hd)
            q = M.rmsnorm(q, M.w[p + "attn_q_norm.weight"])
            k = M.rmsnorm(k, M.w[p + "attn_k_norm.weight"])
            base = self.base_sliding if slide else self.base_global
            scale = 1.0 if slide else self.scale_global
            q = M.rope(q, pos, base, scale) * self.attn_scale
            k = M.rope(k, pos, base, scale)
            attn = M.attend(cache[l], q, k, v, mask, 1.0) @ M.w[p + "attn_output.weight"].T
            x = x + M.rmsnorm(attn, M.w[p + "post_attention_norm.weight"])
            h = M.rmsnorm(x, M.w[p + "ffn_norm.weight"])
            ff = (self.gelu(h @ M.w[p + "ffn_gate.weight"].T) * (h @ M.w[p + "ffn_up.weight"].T)) @ M.w[p + "ffn_down.weight"].T
            x = x + M.rmsnorm(ff, M.w[p + "post_ffw_norm.weight"])
        rows = x if all_logits else x[-1:]
        logits = M.rmsnorm(rows, M.w["output_norm.weight"]) @ M.out.T
        if self.softcap:
            logits = np.tanh(logits / self.softcap) * self.softcap
        return logits


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


GEMMA3_PROMPTS = [
    {"name": "raw_france", "chat": None, "text": "The capital of France is"},
    {"name": "raw_code", "chat": None, "text": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"},
    {"name": "raw_list", "chat": None, "text": "Three primary colors are red,"},
    # Longer than the 512-token sliding window, so the sliding layers' mask cuts in.
    {"name": "raw_long_over_window", "chat": None,
     "text": " ".join(f"Item {i}: the quick brown fox number {i * 7 % 13} jumps over {i % 5} lazy dogs."
                      for i in range(40)) + " In summary,"},
]


class SentencePieceTokenizer:
    """Gemma 3's tokenizer from gemma3_tokenizer_reference.py (sentencepiece on the GGUF vocab)."""

    def __init__(self, model):
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        import gemma3_tokenizer_reference as ref
        f = model.reader.fields
        self.ref = ref
        self.vocab = {"tokens": f["tokenizer.ggml.tokens"].contents(), "scores": f["tokenizer.ggml.scores"].contents(),
                      "types": f["tokenizer.ggml.token_type"].contents(), "bos": model.meta["tokenizer.ggml.bos_token_id"],
                      "eos": model.meta["tokenizer.ggml.eos_token_id"], "unk": model.meta["tokenizer.ggml.unknown_token_id"],
                      "space_prefix": model.meta["tokenizer.ggml.add_space_prefix"]}
        self.sp = ref.build_processor(self.vocab)
        self.user_defined = {p: i for i, (p, t) in enumerate(zip(self.vocab["tokens"], self.vocab["types"])) if t == 4}

    def encode(self, text):
        return [self.vocab["bos"]] + self.ref.encode(self.sp, self.user_defined, text)

    def decode(self, ids):
        return self.sp.decode(ids)


def goldens(model, n):
    if model.gemma3:
        tok, prompts = SentencePieceTokenizer(model), GEMMA3_PROMPTS
        encode, tokenizer = tok.encode, ("sentencepiece BPE from the GGUF vocabulary (gemma3_tokenizer_reference.py), "
                                         "BOS added, raw text")
    else:
        tok, prompts = build_tokenizer(model), PROMPTS
        encode = lambda text: tok.encode(text).ids
        tokenizer = "HF tokenizers BPE from GGUF vocab+merges, smollm pre-tokenizer, special tokens parsed"
    out = {"model_file_name": model.meta.get("general.name"), "reference": "numpy float64, Tests/reference/reference_forward.py",
           "tokenizer": tokenizer, "generated_tokens": n, "prompts": []}
    if model.gemma3:
        out["architecture_checked_against"] = "llama.cpp src/models/gemma3.cpp, llama-hparams.cpp/.h, llama-model.cpp " \
            "(details in reference_forward.py, class Gemma3)"
    for p in prompts:
        ids = encode(p["text"])
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
    ap.add_argument("--kv-f16", action="store_true",
                    help="round K after RoPE and V to float16 as they enter the cache (the engine's KVCache layout)")
    a = ap.parse_args()
    model = Model(a.model)
    if a.kv_f16:
        model.kv_round = lambda x: x.astype(np.float16).astype(np.float64)
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
