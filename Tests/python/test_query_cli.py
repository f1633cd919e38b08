"""Black-box tests of `kvstash query`: the answer alone on stdout, the stats line on stderr,
`--json` on stdout, and the sampling options shared with `generate`."""
import json
import os
import subprocess

import pytest

BIN = os.environ.get("KVSTASH_BIN")
MODEL = os.environ.get("KVSTASH_MODEL")
pytestmark = pytest.mark.skipif(not (BIN and MODEL) and not os.environ.get("CI"),
                                reason="KVSTASH_BIN / KVSTASH_MODEL not set")

DOC = ("Mount Kilimanjaro is a dormant volcano in Tanzania. It is the highest mountain in Africa, "
       "about 5,895 metres above sea level. Its three volcanic cones are Kibo, Mawenzi and Shira.\n")
QUESTION = "Which country is Mount Kilimanjaro in?"


def run(*args, timeout=600):
    if not BIN or not MODEL:
        pytest.fail("KVSTASH_BIN and KVSTASH_MODEL must be set")
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("query")
    doc = root / "kili.txt"
    doc.write_text(DOC)
    path = str(root / "store")
    p = run("precompute", "--store", path, "--model", MODEL, "--codec", "f32", "--no-progress", str(doc))
    assert p.returncode == 0, p.stderr
    return path, str(doc)


def query(store, *args):
    path, doc = store
    return run("query", "--store", path, "--doc", doc, "-n", "16", *args, QUESTION)


def test_answer_on_stdout_stats_on_stderr(store):
    p = query(store)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip(), "no answer"
    assert "TTFT" not in p.stdout and "prompt" not in p.stdout
    assert "TTFT" in p.stderr and "from disk" in p.stderr


def test_json_on_stdout(store):
    p = query(store, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["text"].strip() and out["fromDisk"] > 0 and out["promptTokens"] > out["fromDisk"]


def test_greedy_by_default_and_seeded_sampling_repeats(store):
    greedy = query(store)
    explicit = query(store, "--temp", "0", "--threads", "1")
    assert greedy.returncode == 0 and explicit.returncode == 0, greedy.stderr + explicit.stderr
    assert greedy.stdout == explicit.stdout
    a = query(store, "--temp", "1.5", "--top-k", "40", "--top-p", "0.95", "--seed", "7")
    b = query(store, "--temp", "1.5", "--top-k", "40", "--top-p", "0.95", "--seed", "7")
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout


@pytest.mark.parametrize("bad", [["--temp", "-1"], ["--top-p", "0"], ["--top-k", "-2"], ["--threads", "0"]])
def test_bad_sampling_option_is_a_clean_error(store, bad):
    p = query(store, *bad)
    assert p.returncode != 0
    assert "Error" in p.stderr and "Traceback" not in p.stderr


def test_prefill_inputs_8_keys_its_chunks_apart(store):
    """`--prefill-inputs 8` misses the 16-bit store and answers; an unknown width is a clean error."""
    p = query(store, "--prefill-inputs", "8", "--json", "--no-write-back")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert out["text"].strip()
    vnni = "avx512_vnni" in open("/proc/cpuinfo").read()
    assert (out["fromDisk"] == 0) == vnni, "8-bit prefill keys apart exactly where it is in use (AVX-512 VNNI)"
    bad = query(store, "--prefill-inputs", "12")
    assert bad.returncode != 0 and "prefill-inputs" in bad.stderr and "Trace" not in bad.stderr


def test_query_defaults_to_the_prefill_inputs_of_precompute(tmp_path):
    """A store precomputed with `--prefill-inputs 8` is queried at 8 bits unless told otherwise."""
    doc = tmp_path / "kili.txt"
    doc.write_text(DOC)
    path = str(tmp_path / "store")
    p = run("precompute", "--store", path, "--model", MODEL, "--codec", "f32", "--no-progress",
            "--prefill-inputs", "8", str(doc))
    assert p.returncode == 0, p.stderr
    settings = json.load(open(os.path.join(path, "kvstash-settings.json")))
    assert settings["prefillInputs"] == "8"
    hit = run("query", "--store", path, "--doc", str(doc), "-n", "4", "--json", "--no-write-back", QUESTION)
    assert hit.returncode == 0, hit.stderr
    assert json.loads(hit.stdout)["fromDisk"] > 0
    vnni = "avx512_vnni" in open("/proc/cpuinfo").read()
    other = run("query", "--store", path, "--doc", str(doc), "-n", "4", "--json", "--no-write-back",
                "--prefill-inputs", "16", QUESTION)
    assert other.returncode == 0, other.stderr
    assert (json.loads(other.stdout)["fromDisk"] == 0) == vnni
