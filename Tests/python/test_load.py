"""Load test of a real `kvstash serve` on loopback: 64 concurrent clients mix chat,
streaming chat, precompute and admin calls for a bounded time (KVSTASH_LOAD_SECONDS,
default 20). Every request must get an answer (200/202, or a clean 429/503 with
Retry-After); /health must keep answering; the server's RSS must stay within what its
configuration allows above its RSS at start.

Needs KVSTASH_BIN and KVSTASH_MODEL (scripts/test.sh sets both).
"""

import http.client
import json
import os
import random
import re
import subprocess
import tempfile
import threading
import time

import pytest

BIN = os.environ.get("KVSTASH_BIN")
MODEL = os.environ.get("KVSTASH_MODEL")
pytestmark = pytest.mark.skipif(not (BIN and MODEL) and not os.environ.get("CI"),
                                reason="KVSTASH_BIN / KVSTASH_MODEL not set")

CLIENTS = 64
SECONDS = float(os.environ.get("KVSTASH_LOAD_SECONDS", "20"))
ADMIN = "load-admin"
# KV positions (prompt + max_tokens) of the generations running at once; past it: 429.
ACTIVE_TOKENS = 16384
# Bytes per KV position of SmolLM2-135M (30 layers, 3 KV heads of 64): K and V in f16 plus
# the f32 K before RoPE that write-back encodes.
POSITION_BYTES = 30 * 192 * (2 + 2 + 4)
# What the server may hold above its RSS at start (the model, its f32 copy and the
# prewarmed KV memory): the running generations' KV caches (a quarter more for capacity
# rounded to whole pages), plus 256 MiB for the RAM tier (--ram-budget-mb 64), one
# precompute job, per-request scratch and the threads.
RSS_GROWTH_BOUND_MB = ACTIVE_TOKENS * POSITION_BYTES * 1.25 / 2**20 + 256
# /health is served by the event loop, never behind model work.
HEALTH_BOUND_S = 5.0

DOCUMENT = "\n".join(
    f"Section {i}. The harbour town of Vell keeps ledger {i * 7} for the grain ships, "
    "and its keeper notes the tide, the wind and the cargo of each arrival." for i in range(1, 7))
WORDS = ["apple", "river", "stone", "cloud", "bread", "horse", "lamp", "chair", "green", "music"]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@pytest.fixture(scope="module")
def server():
    if not BIN or not MODEL:
        pytest.fail("KVSTASH_BIN and KVSTASH_MODEL must be set")
    store = tempfile.mkdtemp(prefix="kvstash-load-")
    proc = subprocess.Popen(
        [BIN, "serve", "--store", store, "--model", MODEL, "--port", "0", "--admin-token", ADMIN,
         "--ram-budget-mb", "64", "--precompute-queue", "4", "--precompute-max-documents", "2",
         "--max-active-tokens", str(ACTIVE_TOKENS)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = None
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
            break
    if port is None:
        proc.kill()
        pytest.fail("server did not start")
    yield {"port": port, "pid": proc.pid, "startRSS": rss_mb(proc.pid)}
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def request(port, method, path, body=None, headers=None, stream=False):
    """One request on a fresh connection; returns (status, headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        payload = r.read()
        return r.status, dict(r.getheaders()), payload
    finally:
        conn.close()


def chat_body(rng, stream):
    return {"messages": [{"role": "system", "content": DOCUMENT},
                         {"role": "user", "content": f"{rng.choice(WORDS).capitalize()}: which section?"}],
            "max_tokens": rng.randint(2, 6), "temperature": 0, "stream": stream}


def one_call(rng, port):
    """Runs one random call; returns (kind, status, ok, headers); ok: the answer is well formed."""
    roll = rng.random()
    if roll < 0.55:
        status, headers, body = request(port, "POST", "/v1/chat/completions", chat_body(rng, False))
        ok = status != 200 or json.loads(body)["choices"][0]["message"]["content"] is not None
        return "chat", status, ok, headers
    if roll < 0.75:
        status, headers, body = request(port, "POST", "/v1/chat/completions", chat_body(rng, True))
        ok = status != 200 or body.rstrip().endswith(b"data: [DONE]")
        return "stream", status, ok, headers
    if roll < 0.85:
        doc = f"Note {rng.randint(0, 10**9)}. " + DOCUMENT[: rng.randint(100, 600)]
        status, headers, body = request(port, "POST", "/v1/precompute", {"documents": [doc]})
        return "precompute", status, status != 429 or "Retry-After" in headers, headers
    auth = {"Authorization": f"Bearer {ADMIN}"}
    path = rng.choice(["/admin/stats", "/admin/entries?limit=5", "/v1/models", "/metrics"])
    status, headers, _ = request(port, "GET", path, headers=auth)
    return "admin", status, True, headers


def test_64_clients_mixed_load(server):
    port, pid = server["port"], server["pid"]
    stop_at = time.time() + SECONDS
    results, failures, lock = [], [], threading.Lock()
    health, rss = [], []

    def client(i):
        rng = random.Random(i)
        while time.time() < stop_at:
            try:
                kind, status, ok, headers = one_call(rng, port)
            except Exception as e:  # a lost request: reset, timeout, broken answer
                with lock:
                    failures.append(f"client {i}: {type(e).__name__}: {e}")
                continue
            with lock:
                results.append((kind, status, ok))
                if status in (429, 503) and "Retry-After" not in headers:
                    failures.append(f"{kind} {status} without Retry-After")

    def monitor():
        while time.time() < stop_at + 1:
            t0 = time.monotonic()
            try:
                status, _, _ = request(port, "GET", "/health")
            except Exception as e:
                status = f"{type(e).__name__}"
            health.append((time.monotonic() - t0, status))
            rss.append(rss_mb(pid))
            time.sleep(0.25)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    watcher = threading.Thread(target=monitor)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 600)
    watcher.join()

    kinds = {k: sum(1 for r in results if r[0] == k) for k in ("chat", "stream", "precompute", "admin")}
    statuses = sorted({r[1] for r in results})
    worst_health = max(h[0] for h in health)
    print(f"\nload: {len(results)} answers {kinds}, statuses {statuses}, "
          f"/health worst {worst_health * 1000:.0f} ms over {len(health)} probes, "
          f"RSS {server['startRSS']:.0f} MB at start, peak {max(rss):.0f} MB")
    assert not failures, failures[:10]
    assert all(t.is_alive() is False for t in threads), "a client is still waiting for an answer"
    assert set(statuses) <= {200, 202, 429, 503}, statuses
    assert all(r[2] for r in results), "a 200 answer was not well formed"
    assert kinds["chat"] > 0 and kinds["stream"] > 0 and kinds["precompute"] > 0 and kinds["admin"] > 0, kinds
    assert any(r[0] == "chat" and r[1] == 200 for r in results)
    assert all(h[1] == 200 for h in health), [h for h in health if h[1] != 200][:5]
    assert worst_health < HEALTH_BOUND_S, f"/health took {worst_health:.2f} s"
    growth = max(rss) - server["startRSS"]
    assert growth < RSS_GROWTH_BOUND_MB, f"RSS grew {growth:.0f} MB from {server['startRSS']:.0f} MB"
    # The server is still fully usable afterwards.
    status, _, body = request(port, "POST", "/v1/chat/completions", chat_body(random.Random(0), False))
    assert status == 200, body
