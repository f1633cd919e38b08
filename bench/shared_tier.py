#!/usr/bin/env python3
"""TTFT of `kvstash serve` with a shared tier on a Redis Cluster, in one run (bench/shared_tier runs
it against a 3-node cluster of its own). Never run by CI.

    bench/shared_tier.py --kvstash BIN --model GGUF --cluster HOST:PORT,... [--node HOST:PORT --password P]

On a ~4K-token document (the system turn; a short question as the user turn; streaming chat
completions, TTFT measured client side to the first content chunk), every server with
`--shared` on the cluster:

  miss          nothing cached (a fresh cache_salt, so no chunk key matches the local store or Redis)
  local cold    a new process on frontend A's store, which precomputed the document (chunks in RocksDB)
  shared cold   a new process with an empty store (frontend B): every chunk from Redis, copied locally
  hot           the local-cold process again, a new question (radix tree)
  four at once  four new processes with empty stores asking at the same moment (TTFT each)

and the MB/s of the shared reads (bytes / seconds of the shared tier's reads from /metrics, a read
counting verify, decode and the local copy too) against `redis-benchmark` GET of the same value
size on one node of this machine (one connection, no pipelining). Chunks are published by A
through the publish queue; the run waits until it is empty. Writes bench/results/shared_tier.json.
"""
import argparse
import atexit
import concurrent.futures
import json
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import peers  # noqa: E402  (server start, HTTP helpers, corpus, machine)

ROOT = pathlib.Path(__file__).resolve().parent.parent


def metrics(base):
    """The server's Prometheus samples as {name{labels}: value}."""
    text = urllib.request.urlopen(base + "/metrics", timeout=60).read().decode()
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*(?:\{[^}]*\})?)\s+(\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def tier_sample(samples, name, tier):
    return samples.get(f'{name}{{tier="{tier}"}}', 0.0)


def warm(paths):
    """Reads the files into the page cache (this VM pages idle files out)."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def server(args, store):
    return peers.KVStash(args.kvstash, args.model, store, args.codec)


def precompute(args, store, document):
    """Precomputes `document` on a server over `store` and waits until its chunks are in Redis."""
    s = server(args, store)
    try:
        job = peers.post(s.base, "/v1/precompute", {"documents": [{"id": "doc", "text": document}]})
        while (status := peers.get(s.base, "/v1/precompute/" + job["id"]))["status"] in ("queued", "running"):
            time.sleep(0.1)
        if status["status"] != "succeeded":
            raise RuntimeError(f"precompute failed: {status['error']}")
        while metrics(s.base).get("kvstash_shared_publish_pending_bytes", 0) > 0:
            time.sleep(0.1)
        m = metrics(s.base)
        if m.get("kvstash_shared_publish_failed", 0) or m.get("kvstash_shared_publish_dropped", 0):
            raise RuntimeError("publishing to the cluster failed or dropped chunks")
        return status["tokens_done"]
    finally:
        s.stop()


def shared_cold(args, document, q):
    """A new frontend with an empty store: TTFT, and what it read from the shared tier."""
    store = tempfile.mkdtemp(prefix="kvstash-shared-b-")
    try:
        s = server(args, store)
        try:
            run = peers.chat(s.base, document, q)
            m = metrics(s.base)
        finally:
            s.stop()
        run["sharedTokens"] = m.get('kvstash_cached_tokens_total{tier="shared"}', 0.0)
        run["sharedBytes"] = tier_sample(m, "kvstash_tier_read_bytes_total", "shared")
        run["sharedFetchSeconds"] = tier_sample(m, "kvstash_tier_fetch_seconds_total", "shared")
        run["sharedFetches"] = tier_sample(m, "kvstash_tier_fetches_total", "shared")
        return run
    finally:
        shutil.rmtree(store, ignore_errors=True)


def four_at_once(args, document, tag):
    stores = [tempfile.mkdtemp(prefix="kvstash-shared-f-") for _ in range(4)]
    servers = []
    try:
        servers = [server(args, st) for st in stores]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            runs = list(pool.map(lambda i: peers.chat(servers[i].base, document, peers.question(f"{tag}-four-{i}")),
                                 range(4)))
        return [r["ttft"] for r in runs]
    finally:
        for s in servers:
            s.stop()
        for st in stores:
            shutil.rmtree(st, ignore_errors=True)


def redis_benchmark_mbps(node, password, size, gets):
    """GET MB/s of redis-benchmark (one connection, no pipelining) for values of `size` bytes."""
    host, port = node.rsplit(":", 1)
    argv = ["redis-benchmark", "-h", host, "-p", port, "-t", "set,get", "-n", str(gets), "-d", str(size),
            "-c", "1", "-P", "1", "--csv"]
    if password:
        argv[1:1] = ["-a", password]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if cells and cells[0] == "GET":
            return float(cells[1]) * size / 1e6
    raise RuntimeError(f"no GET row in redis-benchmark output: {out!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kvstash", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--cluster", required=True, help="host:port,... of the Redis Cluster")
    ap.add_argument("--node", help="host:port of a standalone Redis for redis-benchmark (default: a cluster node)")
    ap.add_argument("--password", default=os.environ.get("KVSTASH_REDIS_PASSWORD", ""))
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--miss-reps", type=int, default=2)
    ap.add_argument("--codec", default="int8")
    ap.add_argument("--chars-per-token", type=float, default=4.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "shared_tier.json"))
    args = ap.parse_args()
    atexit.register(lambda: [p.stop() for p in list(peers.Process.live)])
    os.environ["KVSTASH_SHARED"] = "redis://" + args.cluster  # every server of this run has the shared tier
    document, tag = peers.corpus(args.tokens, args.chars_per_token), f"t{args.tokens}"
    store_a = tempfile.mkdtemp(prefix="kvstash-shared-a-")
    runs = {k: [] for k in ("miss", "localCold", "sharedCold", "hot")}
    try:
        stored_tokens = precompute(args, store_a, document)
        for r in range(args.reps):
            warm([args.model, *peers.files_under(store_a)])
            a = server(args, store_a)
            runs["localCold"].append(peers.chat(a.base, document, peers.question(f"{tag}-local-{r}")))
            runs["hot"].append(peers.chat(a.base, document, peers.question(f"{tag}-hot-{r}")))
            if r < args.miss_reps:
                runs["miss"].append(peers.chat(a.base, document, peers.question(f"{tag}-miss-{r}"),
                                               extra={"cache_salt": f"miss-{r}-{time.time()}"}))
            a.stop()
            runs["sharedCold"].append(shared_cold(args, document, peers.question(f"{tag}-shared-{r}")))
        four = four_at_once(args, document, tag)
    finally:
        shutil.rmtree(store_a, ignore_errors=True)
    ms = {k: 1000 * statistics.median(x["ttft"] for x in v) for k, v in runs.items()}
    last = runs["sharedCold"][-1]
    value_bytes = int(last["sharedBytes"] / max(last["sharedFetches"], 1))
    shared_mbps = statistics.median(x["sharedBytes"] / x["sharedFetchSeconds"] / 1e6 for x in runs["sharedCold"])
    bench_mbps = redis_benchmark_mbps(args.node or args.cluster.split(",")[0], args.password if args.node else "",
                                      value_bytes, 100) if not args.node or args.password else None
    report = {
        "machine": peers.machine(), "cores": os.cpu_count(), "blasCore": os.environ.get("OPENBLAS_CORETYPE", "auto"),
        "model": os.path.basename(args.model), "codec": args.codec, "reps": args.reps, "missReps": args.miss_reps,
        "redis": subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip(),
        "promptTokens": (runs["localCold"][0]["usage"] or {}).get("prompt_tokens"), "storedTokens": stored_tokens,
        "ttftMs": ms,
        "fourAtOnceMs": [1000 * t for t in four],
        "ratios": {"sharedColdOverLocalCold": ms["sharedCold"] / ms["localCold"],
                   "missOverSharedCold": ms["miss"] / ms["sharedCold"],
                   "missOverLocalCold": ms["miss"] / ms["localCold"]},
        "sharedRead": {"tokens": last["sharedTokens"], "bytes": last["sharedBytes"], "valueBytes": value_bytes,
                       "perReadMBps": shared_mbps, "redisBenchmarkGetMBps": bench_mbps},
        "runs": runs,
    }
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1))
    print_table(report)


def print_table(report):
    ms, r, s = report["ttftMs"], report["ratios"], report["sharedRead"]
    print(f"\nMachine: {report['machine']} ({report['cores']} cores); {report['model']}, codec {report['codec']}; "
          f"{report['promptTokens']} prompt tokens; medians of {report['reps']} (miss: {report['missReps']})\n")
    print("| row | TTFT (ms) | miss / row |")
    print("| --- | ---: | ---: |")
    for key, label in (("miss", "miss"), ("localCold", "local cold hit (new process, RocksDB)"),
                       ("sharedCold", "shared cold hit (new process, empty store, Redis)"),
                       ("hot", "hot hit, new question")):
        print(f"| {label} | {ms[key]:.0f} | {ms['miss'] / ms[key]:.1f} |")
    print(f"| four frontends at once, shared cold (each) | {' / '.join(f'{t:.0f}' for t in report['fourAtOnceMs'])} | |")
    print(f"\nshared cold / local cold: {r['sharedColdOverLocalCold']:.2f}; "
          f"shared reads: {s['bytes'] / 1e6:.1f} MB in values of {s['valueBytes'] / 1e6:.2f} MB, "
          f"{s['perReadMBps']:.0f} MB/s per read; redis-benchmark GET: "
          + (f"{s['redisBenchmarkGetMBps']:.0f} MB/s" if s["redisBenchmarkGetMBps"] else "not run"))


if __name__ == "__main__":
    main()
