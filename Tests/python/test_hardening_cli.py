"""Black-box tests: client-supplied integers cannot crash the CLI (`-n` near Int64.max,
admin sizes and durations out of range)."""
import os
import subprocess
import tempfile

import pytest

BIN = os.environ.get("KVSTASH_BIN")
MODEL = os.environ.get("KVSTASH_MODEL")
pytestmark = pytest.mark.skipif(not (BIN and MODEL) and not os.environ.get("CI"),
                                reason="KVSTASH_BIN / KVSTASH_MODEL not set")
HUGE = "9223372036854775807"


def run(*args, timeout=300):
    if not BIN or not MODEL:
        pytest.fail("KVSTASH_BIN and KVSTASH_MODEL must be set")
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_generate_with_huge_n_answers():
    p = run("generate", "--model", MODEL, "--chat", "--no-system", "-n", HUGE, "What is the capital of France?")
    assert p.returncode == 0, p.stderr
    assert "Paris" in p.stdout


def test_query_with_huge_n_answers(tmp_path):
    context = tmp_path / "note.txt"
    context.write_text("The harbour town of Vell keeps its grain ledgers in the tower.")
    p = run("query", "--store", str(tmp_path / "kv"), "--model", MODEL, "--context-file", str(context),
            "-n", HUGE, "Where are the ledgers kept? Answer in one sentence.")
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip(), "an answer on stdout"
    assert "prompt" in p.stderr, "the stats line on stderr"


@pytest.mark.parametrize("args", [
    ["evict", "--to-bytes", "1e30GB"], ["evict", "--to-bytes", "infGB"], ["evict", "--to-bytes=-5MB"],
    ["evict", "--older-than", "1e300d"], ["evict", "--older-than", "nand"], ["ls", "--limit=-1"],
])
def test_admin_sizes_out_of_range_are_clean_errors(args):
    with tempfile.TemporaryDirectory() as store:
        p = run(*args[:1], "--store", store, *args[1:])
    assert p.returncode != 0
    assert "out of range" in p.stderr or "must be" in p.stderr or "not a" in p.stderr, p.stderr
    assert p.returncode < 128, f"killed by a signal: {p.returncode}"


@pytest.mark.parametrize("option,value", [
    *[("publish-drain-seconds", v) for v in ["-1", "3601", HUGE, "99999999999999999999999", "nan"]],
    *[("prompt-tails", v) for v in ["-1", "257", HUGE, "99999999999999999999999"]],
])
def test_serve_options_out_of_range_are_clean_errors(option, value):
    with tempfile.TemporaryDirectory() as store:
        p = run("serve", "--store", store, "--model", MODEL, "--port", "0", f"--{option}={value}")
    assert p.returncode != 0
    assert option in p.stderr, p.stderr
    assert p.returncode < 128, f"killed by a signal: {p.returncode}"
