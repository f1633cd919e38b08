"""Running the `kvstash` binary under test (`$KVSTASH_BIN`) and its store-filling child
`kvstash-crashwriter`, shared by the admin and repair CLI tests."""
import os
import subprocess
from pathlib import Path

import pytest

BIN = os.environ.get("KVSTASH_BIN")
# Without a binary the tests skip, except under CI, where they fail.
needs_bin = pytest.mark.skipif(not BIN and not os.environ.get("CI"), reason="KVSTASH_BIN not set")


def kvstash(*args, check=True):
    if not BIN:
        pytest.fail("KVSTASH_BIN not set")
    proc = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise AssertionError(f"kvstash {' '.join(args)} failed: {proc.stderr}")
    return proc


def writer():
    return str(Path(BIN).parent / "kvstash-crashwriter")
