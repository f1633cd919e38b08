#!/usr/bin/env python3
"""Golden token ids of Gemma 3's `llama` (SentencePiece BPE) tokenizer, from the `sentencepiece` package.

Builds a SentencePiece model proto from the GGUF's own vocabulary (pieces, scores, token types;
BPE, byte fallback, identity normalization, no dummy prefix since the GGUF sets
`tokenizer.ggml.add_space_prefix = false`, spaces escaped to U+2581) and encodes a varied text
set with it. As llama.cpp does (`tokenizer_st_partition` in llama-vocab.cpp), USER_DEFINED
pieces (runs of spaces, tabs and newlines, HTML tags) are cut out of the raw text first, longest
piece first, and become their own ids; sentencepiece encodes the text between them, and BOS (2)
starts every sequence (`tokenizer.ggml.add_bos_token`). Writes
Tests/EngineTests/Resources/gemma3_tokenizer_golden.json; `llamacpp_tokenize_check.py --gemma3`
compares it with llama.cpp's own ids.

Usage: gemma3_tokenizer_reference.py [MODEL.gguf]   (default: scripts/setup.sh gemma3's file)
"""
import json
import sys
from pathlib import Path

import gguf
import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "EngineTests/Resources/gemma3_tokenizer_golden.json"
MODEL = Path(sys.argv[1]) if len(sys.argv) > 1 else Path.home() / ".cache/kvstash/models/gemma-3-270m-q4_k_m.gguf"

STRINGS = {
    "english": "The quick brown fox jumps over the lazy dog. What is the capital of France?",
    "leading_space": " leading space",
    "space_runs": "a  b   c    d" + " " * 40 + "e",
    "trailing": "trailing   ",
    "newlines": "line one\nline two\n\n\tindented\r\nend\n\n\n\n\n\n",
    "tabs": "\tone\t\ttwo\t\t\tthree",
    "accents": "Café déjà vu — naïve façade Ångström",
    "emoji": "crab 🦀 family 👨‍👩‍👧 ok ✓",
    "cjk": "你好，世界！안녕하세요 こんにちは",
    "digits": "1234567890 3.14159 v1.2.3 2026-12-03 0x1F",
    "code": "def f(x):\n    return x * 2  # twice\n\nfor i in range(10):\n\tprint(i)\n",
    "html": "<table><tr><td>cell</td></tr></table> <b>bold</b> <code>x</code>",
    "specials_as_text": "<bos>hello<eos> <start_of_turn>user",
    "rare_bytes": "\u0001\u007f\u00a0\u2028 end",
    "mixed": "Price: $12.50 (≈ €11) — 50% off!!! #deal @shop",
}


def load_vocab(path):
    f = gguf.GGUFReader(str(path)).fields
    get = lambda k: f[k].contents()
    return {"tokens": get("tokenizer.ggml.tokens"), "scores": get("tokenizer.ggml.scores"),
            "types": get("tokenizer.ggml.token_type"), "bos": get("tokenizer.ggml.bos_token_id"),
            "eos": get("tokenizer.ggml.eos_token_id"), "unk": get("tokenizer.ggml.unknown_token_id"),
            "add_bos": get("tokenizer.ggml.add_bos_token"), "space_prefix": get("tokenizer.ggml.add_space_prefix")}


def build_processor(v):
    m = pb.ModelProto()
    for i, (piece, score, ty) in enumerate(zip(v["tokens"], v["scores"], v["types"])):
        p = m.pieces.add()
        p.piece, p.score = piece, score
        # GGUF token types are sentencepiece's (1 normal, 2 unknown, 3 control, 4 user
        # defined, 5 unused, 6 byte); sentencepiece needs its unknown piece typed as such.
        p.type = 2 if i == v["unk"] else ty
    t = m.trainer_spec
    t.model_type = pb.TrainerSpec.BPE
    t.byte_fallback = True
    t.unk_id, t.bos_id, t.eos_id, t.pad_id = v["unk"], v["bos"], v["eos"], 0
    n = m.normalizer_spec
    n.name = "identity"
    n.add_dummy_prefix = bool(v["space_prefix"])
    n.remove_extra_whitespaces = False
    n.escape_whitespaces = True
    return spm.SentencePieceProcessor(model_proto=m.SerializeToString())


def encode(sp, user_defined, text):
    """Cuts USER_DEFINED pieces out (longest first, leftmost), sentencepiece on the rest."""
    fragments = [text]
    for piece in sorted(user_defined, key=len, reverse=True):
        out = []
        for frag in fragments:
            if isinstance(frag, int):
                out.append(frag)
                continue
            parts = frag.split(piece)
            for j, part in enumerate(parts):
                if j:
                    out.append(user_defined[piece])
                if part:
                    out.append(part)
        fragments = out
    ids = []
    for frag in fragments:
        ids += [frag] if isinstance(frag, int) else sp.encode(frag)
    return ids


def main():
    v = load_vocab(MODEL)
    sp = build_processor(v)
    user_defined = {p: i for i, (p, ty) in enumerate(zip(v["tokens"], v["types"])) if ty == 4}
    bos = [v["bos"]] if v["add_bos"] else []
    ids = {k: bos + encode(sp, user_defined, s) for k, s in STRINGS.items()}
    # With special-token parsing (llama.cpp's parse_special, used for chat prompts) CONTROL
    # pieces such as <bos> and <start_of_turn> are cut out the same way.
    control = {p: i for i, (p, ty) in enumerate(zip(v["tokens"], v["types"])) if ty == 3}
    parsed = {"specials_as_text": bos + encode(sp, {**user_defined, **control}, STRINGS["specials_as_text"])}
    head = {"model": MODEL.name, "reference": "sentencepiece BPE from the GGUF vocabulary, "
            "USER_DEFINED pieces cut out first (llama.cpp tokenizer_st_partition)", "strings": STRINGS}
    rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(r)}" for k, r in ids.items())
    text = json.dumps(head, ensure_ascii=False, indent=1)[:-2] + ',\n "ids": {\n' + rows + "\n },\n" \
        + ' "ids_parse_special": ' + json.dumps(parsed) + "\n}\n"
    json.loads(text)
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
