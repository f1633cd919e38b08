#!/usr/bin/env python3
"""Golden token ids and chat prompts for the Swift tokenizer tests, from independent code.

Builds a Hugging Face `tokenizers` Tokenizer from the GGUF's own vocabulary and merges (read with
the PyPI `gguf` package) with the pre-tokenizer of each `tokenizer.ggml.pre` expressed as HF regex
splits, and renders the GGUF's Jinja chat template with `jinja2` (as transformers does:
trim_blocks, lstrip_blocks). Writes Tests/reference/tokenizer_golden.json.

Usage: python3 Tests/reference/tokenizer_reference.py [MODEL.gguf]
       (default: $KVSTASH_MODEL, else the cached SmolLM2-135M-Instruct Q4_1)
"""
import json
import os
import sys
from pathlib import Path

import jinja2
from gguf import GGUFReader
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "Tests/reference/tokenizer_golden.json"
DEFAULT_MODEL = Path.home() / ".cache/kvstash/models/SmolLM2-135M-Instruct.Q4_1.gguf"

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
          r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = LLAMA3.replace(r"\p{N}{1,3}", r"\p{N}")

# name -> (HF pre-tokenizer, ignore_merges) mirroring llama.cpp's regex list for that `pre`.
PRE = {
    "smollm": (lambda: pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]), False),
    "gpt2": (lambda: pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), False),
    "llama-bpe": (lambda: pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), True),
    "qwen2": (lambda: pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]), False),
}

# Other template families, verbatim from the models' tokenizer_config.json / GGUF.
ZEPHYR_TEMPLATE = ("{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content']"
          " + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}"
          "\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n"
          "{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
LLAMA3_TEMPLATE = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>'"
          " + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}"
          "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
OTHER_TEMPLATES = {"zephyr": (ZEPHYR_TEMPLATE, {"eos_token": "</s>"}), "llama3": (LLAMA3_TEMPLATE, {"bos_token": ""})}

GENERIC_CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
                  " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
                  "{{ '<|im_start|>assistant\n' }}{% endif %}")


def field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


def build(tokens, types, merges, pre):
    make_pre, ignore_merges = PRE[pre]
    vocab = {}
    for i, t in enumerate(tokens):
        vocab.setdefault(t, i)
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tk = Tokenizer(models.BPE(vocab=vocab, merges=pairs, ignore_merges=ignore_merges))
    tk.pre_tokenizer = make_pre()
    tk.decoder = decoders.ByteLevel()
    added = [AddedToken(t, special=(types[i] == 3), normalized=False)
             for i, t in enumerate(tokens) if types[i] in (3, 4)]
    tk.add_tokens(added)
    return tk


def test_strings():
    gpl = Path("/usr/share/common-licenses/GPL-3").read_text()
    start = gpl.index("  The GNU General Public License is a free, copyleft license")
    paragraph = gpl[start:start + 1500]
    return {
        "english": "The quick brown fox jumps over the lazy dog. What is the capital of France?",
        "accents": "Café déjà vu, naïve façade, Ångström, São Paulo, Dvořák, Łódź, Ærø.",
        "emoji": "I love 🦀 and 🍕! 👍🏽 thumbs, 🇫🇷 flag.",
        "emoji_zwj": "family 👨‍👩‍👧‍👦 and 🏳️‍🌈 and 👩🏽‍💻 coder",
        "digits": "1234567890 3.14159 2024-11-26 v1.2.3 $1,000,000.00 ١٢٣ ½ Ⅻ",
        "whitespace": "a  b   c\t\td\n\ne \r\n f    \n\n\n  g   ",
        "trailing_spaces": "trailing spaces   ",
        "leading_spaces": "   leading",
        "only_spaces": "     ",
        "tabs_newlines": "\t\n\t \n \t",
        "nbsp": "non\u00a0breaking\u2003em\u3000ideographic",
        "python": "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n\nprint([fib(i) for i in range(10)])\n",
        "swift": "struct Point: Sendable {\n    var x: Double, y: Double\n    func norm() -> Double { (x * x + y * y).squareRoot() }\n}\n// let p = Point(x: 3, y: 4)\n",
        "cjk": "你好，世界！今日は良い天気ですね。안녕하세요 세계",
        "contractions": "It's what they're saying: I'd've said we'll, you've, I'm, don't. IT'S THEY'RE",
        "apostrophes": "rock 'n' roll, 's 'S ' 'll 'LL 'x",
        "special": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "special_inline": "a<|endoftext|>b <|im_start|><|im_end|> <|im_start <|im_end|x <file_sep>",
        "mixed_scripts": "Привет мир! Γειά σου Κόσμε! مرحبا بالعالم שלום עולם नमस्ते दुनिया",
        "punctuation": "Hello!!! What?? ... --- ((x)) [a]{b} <tag/> @user #tag 100% a&b |x| ~`^",
        "empty": "",
        "long_whitespace": "x" + " " * 3000 + "y\n" + "\t" * 700 + "\n" * 300 + "z",
        "long_words": "a" * 1000 + " " + "abracadabra" * 120 + " " + "Supercalifragilistic" * 40,
        "long_punct_digits": "=" * 500 + "-+" * 300 + " " + "9" * 400 + " 0x" + "deadbeef" * 80,
        "gpl_paragraph": paragraph,
        "gpl_full": gpl,
    }


CONVERSATIONS = {
    "user_only": [{"role": "user", "content": "What is the capital of France?"}],
    "with_system": [{"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Hi there"}],
    "multi_turn": [{"role": "user", "content": "Hello"},
                   {"role": "assistant", "content": "Hi! How can I help?"},
                   {"role": "user", "content": "Tell me a joke.\nA short one."}],
    "assistant_first": [{"role": "assistant", "content": "Greetings."},
                        {"role": "user", "content": "ok"}],
    "odd_roles_and_spaces": [{"role": "system", "content": "  Be brief.\n"},
                             {"role": "tool", "content": "42"},
                             {"role": "user", "content": "\tWhy?  "}],
    "empty": [],
}


def render(template, messages, add_generation_prompt, **extra):
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt, **extra)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("KVSTASH_MODEL", str(DEFAULT_MODEL))
    r = GGUFReader(path)
    tokens = list(field(r, "tokenizer.ggml.tokens"))
    types = [int(t) for t in field(r, "tokenizer.ggml.token_type")]
    merges = list(field(r, "tokenizer.ggml.merges"))
    template = field(r, "tokenizer.chat_template")
    strings = test_strings()
    out = {"model": Path(path).name, "pre": field(r, "tokenizer.ggml.pre"),
           "strings": strings, "ids": {}, "pieces": {}, "ids_no_parse_special": {}, "chat": []}
    for pre in PRE:
        tk = build(tokens, types, merges, pre)
        # Pre-tokens (vocabulary spelling) of plain text, without added-token matching.
        out["pieces"][pre] = {k: [p for p, _ in tk.pre_tokenizer.pre_tokenize_str(s)]
                              for k, s in strings.items() if k != "gpl_full"}
        out["ids"][pre] = {k: tk.encode(s, add_special_tokens=False).ids for k, s in strings.items()}
        if pre == out["pre"]:
            tk.encode_special_tokens = True
            out["ids_no_parse_special"] = {k: tk.encode(strings[k], add_special_tokens=False).ids
                                           for k in ("special", "special_inline")}
            tk.encode_special_tokens = False
            chat_tk = tk
    for name, msgs in CONVERSATIONS.items():
        for agp in (True, False):
            gguf_form = render(template, msgs, agp)
            bare_form = render(GENERIC_CHATML, msgs, agp)
            out["chat"].append({
                "name": name, "messages": msgs, "add_generation_prompt": agp,
                "default_system": gguf_form, "bare": bare_form,
                "default_system_ids": chat_tk.encode(gguf_form, add_special_tokens=False).ids,
                "bare_ids": chat_tk.encode(bare_form, add_special_tokens=False).ids,
            })
    out["templates"] = [
        {"form": form, "source": src, "eos_token": "</s>", "name": name, "messages": msgs,
         "add_generation_prompt": agp, "expected": render(src, msgs, agp, **extra)}
        for form, (src, extra) in OTHER_TEMPLATES.items()
        for name, msgs in CONVERSATIONS.items() for agp in (True, False)]
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {OUT} ({sum(len(v) for v in out['ids']['smollm'].values())} smollm ids)")


if __name__ == "__main__":
    main()
