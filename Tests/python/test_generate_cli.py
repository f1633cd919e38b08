"""Black-box tests of `kvstash generate`: the answer, the timing line, and clean refusals."""
import os
import subprocess

import pytest

BIN = os.environ.get("KVSTASH_BIN")
MODEL = os.environ.get("KVSTASH_MODEL")
pytestmark = pytest.mark.skipif(not (BIN and MODEL) and not os.environ.get("CI"),
                                reason="KVSTASH_BIN / KVSTASH_MODEL not set")


def generate(*args, timeout=600):
    if not BIN or not MODEL:
        pytest.fail("KVSTASH_BIN and KVSTASH_MODEL must be set")
    return subprocess.run([BIN, "generate", *args], capture_output=True, text=True, timeout=timeout)


def test_bare_user_turn_answers_paris():
    p = generate("--model", MODEL, "--chat", "--no-system", "-n", "16", "What is the capital of France?")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "The capital of France is Paris."
    assert "prompt tokens: 16" in p.stderr and "prefill:" in p.stderr and "decode:" in p.stderr


def test_missing_model_is_a_clean_error(tmp_path):
    p = generate("--model", str(tmp_path / "nope.gguf"), "hi")
    assert p.returncode != 0
    assert "model file not found" in p.stderr and "Traceback" not in p.stderr


def test_not_a_gguf_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"definitely not a model")
    p = generate("--model", str(bad), "hi")
    assert p.returncode != 0
    assert "is not a GGUF file" in p.stderr


def test_prompt_longer_than_context_is_a_clean_error():
    p = generate("--model", MODEL, "-n", "4", " x1" * 9000)
    assert p.returncode != 0
    assert "context overflow" in p.stderr and "8192" in p.stderr
