#!/usr/bin/env python3
"""Golden ids for the `llama` (SentencePiece BPE) tokenizer, from the `sentencepiece` package.

Trains a small SentencePiece BPE model (byte fallback, identity normalization, dummy prefix, no
whitespace collapsing: the settings of Llama/Mistral/TinyLlama tokenizers) on the GPL-3 text,
and writes its vocabulary (pieces, scores, GGUF token types) plus sentencepiece's ids for test
strings to Tests/reference/spm_golden.json. The Swift test writes that vocabulary as a GGUF with
`tokenizer.ggml.model = llama` and compares. With `--gguf PATH` it also writes that GGUF (for
llamacpp_tokenize_check.py --spm).
"""
import json
import sys
import tempfile
from pathlib import Path

import sentencepiece as spm

HERE = Path(__file__).resolve().parent
OUT = HERE / "spm_golden.json"

STRINGS = {
    "english": "The quick brown fox jumps over the lazy dog. What is the capital of France?",
    "license": "This program is free software: you can redistribute it and/or modify it.",
    "leading_space": " leading space",
    "spaces": "a  b   c    d",
    "trailing": "trailing   ",
    "newlines": "line one\nline two\n\n\tindented\r\nend",
    "accents_unknown": "Café déjà vu — naïve façade Ångström",
    "emoji_bytes": "crab 🦀 family 👨‍👩‍👧 ok",
    "cjk": "你好，世界！안녕",
    "digits": "1234567890 3.14159 v1.2.3",
    "code": "def f(x):\n    return x * 2  # twice\n",
    "special": "<s>hello</s> world",
    "empty": "",
}


def gguf_types(sp):
    types = []
    for i in range(sp.get_piece_size()):
        if sp.is_unknown(i):
            types.append(2)
        elif sp.is_control(i):
            types.append(3)
        elif sp.is_byte(i):
            types.append(6)
        elif sp.is_unused(i):
            types.append(5)
        else:
            types.append(1)
    return types


def main():
    gpl = Path("/usr/share/common-licenses/GPL-3").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text(gpl)
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=f"{tmp}/m", vocab_size=1200, model_type="bpe",
            byte_fallback=True, normalization_rule_name="identity", add_dummy_prefix=True,
            remove_extra_whitespaces=False, split_digits=True, character_coverage=1.0,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2)
        sp = spm.SentencePieceProcessor(model_file=f"{tmp}/m.model")
    n = sp.get_piece_size()
    vocab = {"tokens": [sp.id_to_piece(i) for i in range(n)],
             "scores": [sp.get_score(i) for i in range(n)],
             "types": gguf_types(sp), "bos": 1, "eos": 2, "unk": 0}
    ids = {k: sp.encode(s) for k, s in STRINGS.items()}
    # With special-token parsing (llama.cpp parse_special), "<s>" and "</s>" are tokens and each
    # text fragment that starts the text or follows a special token gets the dummy-prefix space.
    parsed = {"special": [1] + sp.encode("hello") + [2] + sp.encode(" world")}
    out = {"vocab": vocab, "strings": STRINGS, "ids": ids, "ids_parse_special": parsed}
    OUT.write_text(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"wrote {OUT}: {n} pieces")
    if "--gguf" in sys.argv:
        write_gguf(Path(sys.argv[sys.argv.index("--gguf") + 1]), vocab)


def write_gguf(path, vocab):
    import gguf
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(64); w.add_embedding_length(64); w.add_block_count(1)
    w.add_feed_forward_length(64); w.add_head_count(1); w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama"); w.add_tokenizer_pre("default")
    w.add_token_list(vocab["tokens"]); w.add_token_scores(vocab["scores"]); w.add_token_types(vocab["types"])
    w.add_bos_token_id(vocab["bos"]); w.add_eos_token_id(vocab["eos"]); w.add_unk_token_id(vocab["unk"])
    w.add_add_bos_token(False); w.add_add_space_prefix(True)
    w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
