"""Black-box tests of `--shared` on the real model: a document precomputed on frontend A is
queried on frontend B (another store) by its id, its prefix from the Redis Cluster of
scripts/redis-test-servers.sh, and with the f32 codec B's answer equals the uncached one."""
import json
import os
import subprocess

import pytest

BIN = os.environ.get("KVSTASH_BIN")
MODEL = os.environ.get("KVSTASH_MODEL")
CLUSTER = os.environ.get("KVSTASH_REDIS_CLUSTER")
NODE = os.environ.get("KVSTASH_REDIS_NODE")
pytestmark = pytest.mark.skipif(not (BIN and MODEL and CLUSTER) and not os.environ.get("CI"),
                                reason="KVSTASH_BIN / KVSTASH_MODEL / KVSTASH_REDIS_CLUSTER not set")

DOC = " ".join(f"Station {i} of the northern line opened in {1900 + i} beside the river market." for i in range(60))
QUESTION = "Which station opened in 1931?"


def run(*args, timeout=900):
    if not (BIN and MODEL and CLUSTER):
        pytest.fail("KVSTASH_BIN, KVSTASH_MODEL and KVSTASH_REDIS_CLUSTER must be set")
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_query_on_a_second_frontend_takes_the_prefix_from_the_shared_tier(tmp_path):
    shared = "redis://" + CLUSTER
    doc = tmp_path / f"stations-{os.getpid()}.txt"
    doc.write_text(DOC)
    a, b, c = (str(tmp_path / name) for name in ("a", "b", "c"))
    p = run("precompute", "--store", a, "--model", MODEL, "--codec", "f32", "--no-progress", "--shared", shared, str(doc))
    assert p.returncode == 0, p.stderr
    assert "published to shared" in p.stderr, p.stderr
    cold = run("query", "--store", b, "--model", MODEL, "--doc", str(doc), "--shared", shared, "--json", "-n", "16", QUESTION)
    assert cold.returncode == 0, cold.stderr
    got = json.loads(cold.stdout)
    assert got["fromShared"] >= 512 and got["fromDisk"] == 0, got
    assert "tier shared:" in cold.stderr, cold.stderr
    uncached = run("query", "--store", c, "--model", MODEL, "--context-file", str(doc), "--no-write-back", "--json",
                   "-n", "16", QUESTION)
    assert uncached.returncode == 0, uncached.stderr
    want = json.loads(uncached.stdout)
    assert want["fromShared"] == 0 and want["fromDisk"] == 0
    assert got["text"] == want["text"]


def test_wrong_credentials_name_the_tier(tmp_path):
    if not NODE:
        pytest.skip("KVSTASH_REDIS_NODE not set")
    p = run("query", "--store", str(tmp_path / "s"), "--model", MODEL, "--context-file", __file__,
            "--shared", f"redis://:not-the-password@{NODE}", "-n", "1", "Hi?")
    assert p.returncode != 0
    assert "tier 'shared'" in p.stderr and "authentication failed" in p.stderr, p.stderr
    assert "not-the-password" not in p.stderr
