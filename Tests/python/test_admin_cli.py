"""Black-box tests of the admin CLI (`kvstash ls|stats|inspect|evict|pin|unpin|verify|compact`).

The store is filled by the test helper `kvstash-crashwriter` (built beside `kvstash`), which
writes small self-checking chunks with chunk size 4.
"""
import json
import subprocess
import time

import pytest

from kvstash_cli import kvstash, needs_bin, writer

pytestmark = needs_bin


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "store")
    subprocess.run([writer(), path, "1", "50"], check=True, timeout=60, capture_output=True)
    return path


def as_json(*args):
    return json.loads(kvstash(*args, "--json").stdout)


def test_stats_ls_inspect(store):
    stats = as_json("stats", "--store", store)
    assert stats["entries"] == 50
    assert stats["chunkSize"] == 4
    assert stats["corruptFound"] == 0
    entries = as_json("ls", "--store", store, "--limit", "5")
    assert len(entries) == 5
    key = entries[0]["key"]
    info = as_json("inspect", key, "--store", store)
    assert info["valueReadable"] is True
    assert len(info["meta"]["tokens"]) == 4
    assert info["meta"]["modelFingerprint"] == "c7"
    table = kvstash("ls", "--store", store).stdout
    assert key in table and "50 entries" in table
    assert "entries" in kvstash("stats", "--store", store).stdout


def test_pin_evict_unpin(store):
    key = as_json("ls", "--store", store, "--limit", "1")[0]["key"]
    kvstash("pin", key, "--store", store)
    assert [e["key"] for e in as_json("ls", "--store", store, "--pinned")] == [key]
    report = as_json("evict", "--to-bytes", "0", "--store", store)
    assert report["entries"] == 49
    assert [e["key"] for e in as_json("ls", "--store", store)] == [key]
    assert as_json("evict", "--key", key, "--store", store)["entries"] == 0  # pinned
    kvstash("unpin", key, "--store", store)
    assert as_json("evict", "--key", key, "--store", store)["entries"] == 1
    assert as_json("stats", "--store", store)["entries"] == 0
    kvstash("compact", "--store", store)


def test_verify_clean_store(store):
    report = as_json("verify", "--store", store)
    assert report["checked"] == 50 and report["ok"] == 50 and report["corrupt"] == []


def test_bad_input(store):
    assert kvstash("inspect", "nothex", "--store", store, check=False).returncode != 0
    assert kvstash("evict", "--store", store, check=False).returncode != 0  # no rule
    assert kvstash("stats", "--store", store + "-missing", check=False).returncode != 0


def test_reads_work_while_another_process_holds_the_store(store):
    holder = subprocess.Popen([writer(), store, "2"], stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        proc = kvstash("stats", "--store", store, "--json")
        assert "read-only" in proc.stderr
        assert json.loads(proc.stdout)["entries"] >= 50
        assert len(as_json("ls", "--store", store, "--limit", "3")) == 3
        denied = kvstash("evict", "--older-than", "0s", "--store", store, check=False)
        assert denied.returncode != 0
        assert f"pid {holder.pid}" in denied.stderr
    finally:
        holder.kill()
        holder.wait()
