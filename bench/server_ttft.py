#!/usr/bin/env python3
"""TTFT over HTTP: miss vs RAM hit vs disk hit, through `kvstash serve` and the openai client.

Usage: bench/server_ttft.py KVSTASH_BIN [--tokens 1000 4000] [--repeats 3]
Writes bench/results/server_ttft.json and prints a markdown table.

For each prompt size: a fresh store gets the document precomputed (POST /v1/precompute),
the server is restarted (RAM tier empty), then per repeat, with streaming chat:
  disk  - first question of a fresh server: the document's chunks come from the store;
  ram   - a second question: the document's KV is in the radix tree;
  miss  - the same prompt under a new cache_salt: nothing cached, full prefill.
TTFT is measured client side, from sending the request to the first content chunk.
"""
import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import tempfile
import time

import urllib.request

import openai

SENTENCE = ("The harbour town of Vell keeps a ledger for the grain ships, and its keeper notes the tide, "
            "the wind and the cargo of each arrival. ")


def http_json(url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=600).read())


def start(binary, store):
    proc = subprocess.Popen([binary, "serve", "--store", store, "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        m = re.search(r"serving (\S+) on (http://\S+)", line)
        if m:
            return proc, m.group(1), m.group(2)
    raise RuntimeError("server did not start")


def ttft(client, model, document, question, salt):
    t0 = time.perf_counter()
    stream = client.chat.completions.create(
        model=model, stream=True, max_tokens=2, temperature=0, extra_body={"cache_salt": salt},
        stream_options={"include_usage": True},
        messages=[{"role": "system", "content": document}, {"role": "user", "content": question}])
    first, cached = None, None
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - t0
        if chunk.usage is not None:
            cached = chunk.usage.prompt_tokens_details.cached_tokens
            prompt = chunk.usage.prompt_tokens
    return first, cached, prompt


def run(binary, tokens, repeats):
    document = SENTENCE * max(1, tokens // 30)
    rows = []
    for r in range(repeats):
        store = tempfile.mkdtemp(prefix="kvstash-bench-")
        try:
            proc, model, base = start(binary, store)
            job = http_json(base + "/v1/precompute", {"documents": [{"id": "doc", "text": document}],
                                                      "cache_salt": "bench"})
            while http_json(base + "/v1/precompute/" + job["id"])["status"] == "running":
                time.sleep(0.1)
            proc.terminate(); proc.wait()
            proc, model, base = start(binary, store)
            client = openai.OpenAI(base_url=base + "/v1", api_key="x", timeout=600)
            disk = ttft(client, model, document, "Question one?", "bench")
            ram = ttft(client, model, document, "Question two?", "bench")
            miss = ttft(client, model, document, "Question two?", f"fresh-{r}")
            proc.terminate(); proc.wait()
            rows.append({"disk": disk, "ram": ram, "miss": miss})
        finally:
            shutil.rmtree(store, ignore_errors=True)
    med = {k: statistics.median(row[k][0] for row in rows) for k in ("disk", "ram", "miss")}
    return {"prompt_tokens": rows[0]["miss"][2], "cached_tokens": {k: rows[0][k][1] for k in ("disk", "ram", "miss")},
            "ttft_seconds_median": med, "runs": rows,
            "miss_over_disk": med["miss"] / med["disk"], "miss_over_ram": med["miss"] / med["ram"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--tokens", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    results = {"machine": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
               "note": "other builds were loading the CPU during the run",
               "sizes": [run(args.binary, t, args.repeats) for t in args.tokens]}
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/server_ttft.json", "w") as f:
        json.dump(results, f, indent=2)
    print(f"machine: {cpu}, {os.cpu_count()} cores\n")
    print("| prompt tokens | cached (disk / RAM / miss) | TTFT disk hit | TTFT RAM hit | TTFT miss | miss/disk | miss/RAM |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for s in results["sizes"]:
        m, c = s["ttft_seconds_median"], s["cached_tokens"]
        print(f"| {s['prompt_tokens']} | {c['disk']} / {c['ram']} / {c['miss']} | {m['disk'] * 1000:.0f} ms | "
              f"{m['ram'] * 1000:.0f} ms | {m['miss'] * 1000:.0f} ms | {s['miss_over_disk']:.1f}x | {s['miss_over_ram']:.1f}x |")


if __name__ == "__main__":
    main()
