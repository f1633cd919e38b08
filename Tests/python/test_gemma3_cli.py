"""Gemma 3 270M through the CLI and the server, beside the default model in one store:
`precompute`, `query` and `serve` with `--model gemma3` (the short name; scripts/test.sh
exports KVSTASH_GEMMA3_MODEL, which it resolves to). Answers with the cache equal answers
without it; the two models' chunks stay apart (the model fingerprint is in every key)."""
import json
import os
import re
import subprocess
import time
import urllib.request

import pytest

BIN = os.environ.get("KVSTASH_BIN")
MODEL = os.environ.get("KVSTASH_MODEL")
GEMMA = os.environ.get("KVSTASH_GEMMA3_MODEL")
pytestmark = pytest.mark.skipif(not (BIN and MODEL and GEMMA) and not os.environ.get("CI"),
                                reason="KVSTASH_BIN / KVSTASH_MODEL / KVSTASH_GEMMA3_MODEL not set")

DOC = "\n".join(f"Entry {i}. The lighthouse keeper of Arden logs ship {i * 3} at dawn and lamp oil "
                f"of {i + 4} litres by night." for i in range(1, 25)) + "\n"
QUESTION = "Which ship is logged in entry 5?"


def run(*args, timeout=600):
    if not (BIN and MODEL and GEMMA):
        pytest.fail("KVSTASH_BIN, KVSTASH_MODEL and KVSTASH_GEMMA3_MODEL must be set")
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"kvstash {' '.join(args)}: {p.stderr}"
    return p


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma3")
    doc = root / "arden.txt"
    doc.write_text(DOC)
    path = str(root / "store")
    for model in (MODEL, "gemma3"):
        run("precompute", "--store", path, "--model", model, "--codec", "f32", "--chunk-size", "64",
            "--no-progress", str(doc))
    return path, str(doc), str(root)


def query(store_path, doc, model):
    p = run("query", "--store", store_path, "--doc", doc, "--model", model, "-n", "12", "--json", QUESTION)
    return json.loads(p.stdout)


def test_one_store_holds_both_models_and_each_hits_its_own(store):
    path, doc, _ = store
    stats = json.loads(run("stats", "--store", path, "--json").stdout)
    assert len(stats["entriesByModel"]) == 2, stats
    for model in (MODEL, "gemma3"):
        out = query(path, doc, model)
        assert out["fromDisk"] > 0 and out["corruptChunks"] == 0, out
        assert out["text"].strip(), out


def test_gemma3_answer_with_the_cache_equals_the_answer_without(store):
    path, doc, root = store
    cached = query(path, doc, "gemma3")
    empty = os.path.join(root, "empty-store")
    text = os.path.join(root, "arden-copy.txt")
    with open(text, "w") as f:
        f.write(DOC)
    p = run("query", "--store", empty, "--context-file", text, "--model", "gemma3", "-n", "12", "--json", QUESTION)
    uncached = json.loads(p.stdout)
    assert uncached["fromDisk"] == 0 and uncached["fromRAM"] == 0
    assert uncached["promptTokens"] == cached["promptTokens"]
    assert uncached["text"] == cached["text"]


def _chat(base, model, question, salt):
    body = json.dumps({"model": model, "max_tokens": 8, "temperature": 0, "cache_salt": salt,
                       "messages": [{"role": "system", "content": DOC}, {"role": "user", "content": question}]})
    req = urllib.request.Request(base + "/v1/chat/completions", data=body.encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as r:
        out = json.loads(r.read())
    return out["choices"][0]["message"]["content"], out["usage"]["prompt_tokens_details"]["cached_tokens"]


def test_serve_gemma3_reuses_the_document_of_a_chat(tmp_path):
    proc = subprocess.Popen([BIN, "serve", "--store", str(tmp_path / "store"), "--model", "gemma3", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        match, lines, deadline = None, [], time.time() + 120
        while match is None and time.time() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r"serving (\S+) on (http://\S+)", line)
        assert match, "server did not start:\n" + "".join(lines)
        model, base = match.group(1), match.group(2)
        assert model.startswith("gemma-3-270m")
        assert _chat(base, model, "Which ship is logged in entry 2?", "a")[1] == 0
        text, cached = _chat(base, model, QUESTION, "a")
        assert cached > 0, "the document's tokens come from the cache"
        uncached, none = _chat(base, model, QUESTION, "b")
        assert none == 0 and uncached == text
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
