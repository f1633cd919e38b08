"""Black-box test of `kvstash serve` stopping with chunks still queued for the shared tier:
a document's chunks are computed into the store, then a server with a shared tier (a private
redis-server behind a proxy that passes 4 MB/s) precomputes it again: the job only hands the
stored chunks to the publish queue and finishes while most of them still wait there. On
SIGTERM the server must publish them before it exits (--publish-drain-seconds), so Redis
ends up holding every chunk the local store holds.

Needs KVSTASH_BIN, KVSTASH_MODEL (scripts/test.sh sets both) and Debian's redis-server.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
import uuid

import pytest

BIN = os.environ.get("KVSTASH_BIN")
MODEL = os.environ.get("KVSTASH_MODEL")
pytestmark = pytest.mark.skipif(not (BIN and MODEL) and not os.environ.get("CI"),
                                reason="KVSTASH_BIN / KVSTASH_MODEL not set")

# Client-to-server bytes per second through the proxy: a chunk of SmolLM2 int8 KV (~3 MB)
# takes under a second, inside the tier's 2 s command timeout.
RATE = 4 << 20
DOCUMENT = " ".join(f"Pier {i} of the eastern harbour took its first cargo of salt in {1800 + i}."
                    for i in range(120))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrottlingProxy:
    """Forwards TCP connections to `upstream`, at most RATE bytes/s towards it."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self.pump, args=(client, server, RATE), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client, None), daemon=True).start()

    @staticmethod
    def pump(src, dst, rate):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                if rate:
                    time.sleep(len(data) / rate)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.listener.close()


@pytest.fixture
def redis():
    if not shutil.which("redis-server"):
        pytest.fail("redis-server is not installed (scripts/test.sh installs it)")
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True).stdout.strip() == "PONG":
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("redis-server did not start")
    yield port
    proc.kill()
    proc.wait()


def chunk_keys(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "--scan", "--pattern", "kvstash:chunk:*"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def http(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as r:
        return json.loads(r.read())


class Server:
    """`kvstash serve` on `store` with `args`; `stop()` sends SIGTERM and returns stderr."""

    def __init__(self, store, *args):
        self.proc = subprocess.Popen([BIN, "serve", "--store", store, "--model", MODEL, "--port", "0", "--codec", "int8",
                                      "--prewarm-tokens", "0", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.base = None
        for line in self.proc.stdout:
            if m := re.search(r"on (http://\S+)", line):
                self.base = m.group(1)
                break
        assert self.base, "server did not start"

    def precompute(self, document):
        job = http(self.base, "POST", "/v1/precompute", {"documents": [{"id": "piers", "text": document}]})
        while (status := http(self.base, "GET", "/v1/precompute/" + job["id"]))["status"] in ("queued", "running"):
            time.sleep(0.05)
        assert status["status"] == "succeeded", status

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        _, stderr = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0, stderr
        return stderr

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()


def test_sigterm_publishes_the_queued_chunks_before_exiting(redis, tmp_path):
    store, document = str(tmp_path / "store"), f"{uuid.uuid4().hex}. {DOCUMENT}"
    # The document's chunks computed into the store first, with no shared tier...
    local = Server(store)
    try:
        local.precompute(document)
        local.stop()
    finally:
        local.kill()
    # ...so that precomputing it again with one only hands them to the publish queue, at once,
    # and the 4 MB/s link leaves them queued when the job is done.
    proxy = ThrottlingProxy(("127.0.0.1", redis))
    shared = Server(store, "--shared", f"redis://127.0.0.1:{proxy.port}")
    try:
        shared.precompute(document)
        published_when_done = len(chunk_keys(redis))
        stderr = shared.stop()
    finally:
        shared.kill()
        proxy.close()
    stats = json.loads(subprocess.run([BIN, "stats", "--store", store, "--json"], capture_output=True, text=True,
                                      check=True).stdout)
    assert stats["entries"] >= 4, stats
    assert published_when_done < stats["entries"], "the proxy should have left chunks queued when the job finished"
    assert len(chunk_keys(redis)) == stats["entries"], stderr
