"""Black-box tests of `--shared` on the real model: a document precomputed on frontend A is
queried on frontend B (another store) by its id, its prefix from the Redis Cluster of
scripts/redis-test-servers.sh, and with the f32 codec B's answer equals the one from a local
store holding the same document, and the uncached one."""
import json
import os
import subprocess
import uuid

import pytest

BIN = os.environ.get("KVSTASH_BIN")
MODEL = os.environ.get("KVSTASH_MODEL")
CLUSTER = os.environ.get("KVSTASH_REDIS_CLUSTER")
NODE = os.environ.get("KVSTASH_REDIS_NODE")
pytestmark = pytest.mark.skipif(not (BIN and MODEL and CLUSTER) and not os.environ.get("CI"),
                                reason="KVSTASH_BIN / KVSTASH_MODEL / KVSTASH_REDIS_CLUSTER not set")

DOC = " ".join(f"Station {i} of the northern line opened in {1900 + i} beside the river market." for i in range(60))
QUESTION = "Which station opened in 1931?"


def fresh(text):
    """`text` behind a nonce, so its chunk keys are new to a cluster that outlives one run."""
    return f"Run {uuid.uuid4().hex}. {text}"


def run(*args, timeout=900):
    if not (BIN and MODEL and CLUSTER):
        pytest.fail("KVSTASH_BIN, KVSTASH_MODEL and KVSTASH_REDIS_CLUSTER must be set")
    return subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)


def test_query_on_a_second_frontend_takes_the_prefix_from_the_shared_tier(tmp_path):
    shared = "redis://" + CLUSTER
    doc = tmp_path / f"stations-{os.getpid()}.txt"
    doc.write_text(fresh(DOC))
    a, b, c = (str(tmp_path / name) for name in ("a", "b", "c"))
    p = run("precompute", "--store", a, "--model", MODEL, "--codec", "f32", "--no-progress", "--shared", shared, str(doc))
    assert p.returncode == 0, p.stderr
    assert "published to shared" in p.stderr, p.stderr
    cold = run("query", "--store", b, "--model", MODEL, "--doc", str(doc), "--shared", shared, "--json", "-n", "16", QUESTION)
    assert cold.returncode == 0, cold.stderr
    got = json.loads(cold.stdout)
    assert got["fromShared"] >= 512 and got["fromDisk"] == 0, got
    assert "tier shared:" in cold.stderr, cold.stderr
    # The same document precomputed into a local store, without the shared tier: its f32 KV
    # is bit for bit what frontend B spliced from the cluster.
    p = run("precompute", "--store", c, "--model", MODEL, "--codec", "f32", "--no-progress", str(doc))
    assert p.returncode == 0, p.stderr
    local = run("query", "--store", c, "--model", MODEL, "--doc", str(doc), "--json", "-n", "16", QUESTION)
    assert local.returncode == 0, local.stderr
    want = json.loads(local.stdout)
    assert want["fromShared"] == 0 and want["fromDisk"] == got["fromShared"], (want, got)
    assert got["text"] == want["text"]
    # And the miss: where the engine computes rows batch-invariantly (AVX-512 VNNI or AVX2;
    # the engine says so, and so does this CPU's flags), the cached answer is the uncached one,
    # token for token.
    assert got["batchInvariant"] == batch_invariant_cpu(), got
    if got["batchInvariant"]:
        miss = run("query", "--store", str(tmp_path / "d"), "--model", MODEL, "--context-file", str(doc),
                   "--no-write-back", "--json", "-n", "16", QUESTION)
        assert miss.returncode == 0, miss.stderr
        uncached = json.loads(miss.stdout)
        assert uncached["fromShared"] == 0 and uncached["fromDisk"] == 0, uncached
        assert got["text"] == uncached["text"]


def batch_invariant_cpu():
    """Whether this CPU has what `LlamaModel.batchInvariant` needs for the default model (its
    matrices Q4_1 and Q8_0, interleaved: AVX-512 F, BW and VNNI, or AVX2 and FMA), read from
    /proc/cpuinfo, independently of the engine."""
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    has = lambda *names: all(f" {name}" in flags for name in names)  # noqa: E731
    return has("avx512f", "avx512bw", "avx512_vnni") or has("avx2", "fma")


def test_wrong_credentials_name_the_tier(tmp_path):
    if not NODE:
        pytest.skip("KVSTASH_REDIS_NODE not set")
    p = run("query", "--store", str(tmp_path / "s"), "--model", MODEL, "--context-file", __file__,
            "--shared", f"redis://:not-the-password@{NODE}", "-n", "1", "Hi?")
    assert p.returncode != 0
    assert "tier 'shared'" in p.stderr and "authentication failed" in p.stderr, p.stderr
    assert "not-the-password" not in p.stderr


def redis_namespace_reference(prefix="kvstash:chunk:"):
    """Keys under `prefix` and the sum of their value lengths, node by node, read with
    redis-cli (an independent client)."""
    keys = size = 0
    for node in CLUSTER.split(","):
        host, port = node.rsplit(":", 1)
        cli = ["redis-cli", "-h", host, "-p", port]
        names = subprocess.run([*cli, "--scan", "--pattern", prefix + "*"], capture_output=True, text=True,
                               check=True).stdout.split()
        keys += len(names)
        if names:
            lengths = subprocess.run(cli, input="".join(f"STRLEN {n}\n" for n in names), capture_output=True,
                                     text=True, check=True).stdout.split()
            size += sum(int(n) for n in lengths)
    return keys, size


def test_stats_report_the_shared_tier(tmp_path):
    shared = "redis://" + CLUSTER
    doc = tmp_path / f"stats-{os.getpid()}.txt"
    doc.write_text(fresh(DOC[:1500]))
    a = str(tmp_path / "a")
    p = run("precompute", "--store", a, "--model", MODEL, "--codec", "int8", "--no-progress", "--shared", shared, str(doc))
    assert p.returncode == 0, p.stderr
    s = run("stats", "--store", a, "--json", "--shared", shared, timeout=60)
    assert s.returncode == 0, s.stderr
    got = json.loads(s.stdout)
    assert got["entries"] >= 2, got  # the store's fields as without --shared
    tier = got["shared"]
    assert tier["reachable"] and tier["tier"] == "shared" and "error" not in tier, tier
    assert len(tier["nodes"]) == 3 and tier["scanComplete"], tier
    for node in tier["nodes"]:
        assert node["keys"] >= node["chunks"] and node["usedMemoryBytes"] > 0 and node["maxMemoryPolicy"], node
    assert (tier["chunks"], tier["chunkBytes"]) == redis_namespace_reference()
    assert tier["chunks"] >= got["entries"] and tier["chunkBytes"] >= got["bytes"], (tier, got)
    # The same through $KVSTASH_SHARED, as a table.
    env = dict(os.environ, KVSTASH_SHARED=shared)
    t = subprocess.run([BIN, "stats", "--store", a], capture_output=True, text=True, timeout=60, env=env)
    assert t.returncode == 0, t.stderr
    assert "tier shared" in t.stdout and "reachable, 3 nodes" in t.stdout, t.stdout


def test_stats_name_an_unusable_shared_tier(tmp_path):
    a = str(tmp_path / "a")
    doc = tmp_path / "d.txt"
    doc.write_text(DOC[:600])
    assert run("precompute", "--store", a, "--model", MODEL, "--no-progress", str(doc)).returncode == 0
    cases = [("redis://127.0.0.1:9", "127.0.0.1:9")]
    if NODE:
        cases.append((f"redis://:not-the-password@{NODE}", "authentication failed"))
    for url, why in cases:
        s = run("stats", "--store", a, "--json", "--shared", url, timeout=60)
        assert s.returncode == 0, s.stderr
        tier = json.loads(s.stdout)["shared"]
        assert not tier["reachable"] and tier["error"].startswith("tier 'shared'") and why in tier["error"], tier
        assert "not-the-password" not in s.stdout
        t = run("stats", "--store", a, "--shared", url, timeout=60)
        assert "UNREACHABLE" in t.stdout and "tier 'shared'" in t.stdout, t.stdout
