"""Black-box tests of a store with a damaged table file: `compact` and `verify` must fail
(exit 1) instead of printing success, and `kvstash repair` must bring the store back."""
import json
import subprocess
from pathlib import Path

import pytest

from kvstash_cli import kvstash, needs_bin, writer

pytestmark = needs_bin


@pytest.fixture
def store(tmp_path):
    path = str(tmp_path / "store")
    subprocess.run([writer(), path, "1", "50"], check=True, timeout=60, capture_output=True)
    return path


def damage_largest_table(store):
    table = max(Path(store).glob("*.sst"), key=lambda p: p.stat().st_size)
    data = bytearray(table.read_bytes())
    at = len(data) // 3  # inside the data blocks, before index and filter
    for i in range(at, at + 16):
        data[i] ^= 0xFF
    table.write_bytes(data)


def test_damaged_table_fails_compact_and_verify_then_repair_recovers(store):
    damage_largest_table(store)
    compact = kvstash("compact", "--store", store, check=False)
    assert compact.returncode != 0, compact.stdout
    assert "compaction failed" in compact.stderr
    verify = kvstash("verify", "--store", store, check=False)
    assert verify.returncode == 1
    assert "damaged table file" in verify.stdout and "kvstash repair" in verify.stdout
    assert (Path(store) / "kvstash.needs-repair").exists()

    repair = kvstash("repair", "--store", store)
    assert "repaired" in repair.stdout
    assert not (Path(store) / "kvstash.needs-repair").exists()
    assert any((Path(store) / "lost").iterdir()), "the damaged table file was set aside"
    report = json.loads(kvstash("verify", "--store", store, "--json").stdout)
    assert report["corrupt"] == [] and report["orphans"] == [] and "tableDamage" not in report
    kvstash("compact", "--store", store)
    stats = json.loads(kvstash("stats", "--store", store, "--json").stdout)
    assert stats["backgroundErrors"] == 0 and stats["needsRepair"] is False
