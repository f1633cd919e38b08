#!/usr/bin/env python3
"""Concurrent chats: `kvstash serve` against llama-server (one slot, and four), over HTTP, in
one run.

    bench/burst.py --kvstash BIN --llama-server BIN --model GGUF [--tokens 1024] [--clients 8]
                   [--long-tokens 2048] [--reps 3]

First a burst of chats over a document no server has seen.

Each repetition puts a new nonce in front of the document (bench/peers.py's license text), so
nothing is cached, and sends `--clients` streaming chats at once, each with its own question
and a 16-token answer. Reported per server: the median over repetitions of the time until the
last answer ends (the burst's makespan) and of the median and worst time to first token. A
server that computes the document once and lets the others reuse it finishes in about one
miss plus the questions.

Then, per repetition, a hot hit during a miss: a chat over a document answered once before,
sent one second after a chat over a new `--long-tokens` document started; reported are its
time to first token and the miss's. A server that computes one prompt at a time to its end
makes the hot hit wait for the whole miss.

Writes bench/results/burst.json and prints a markdown table. Never run by CI; hold the CPU
lock (`flock /tmp/cpu.lock`) while it runs.
"""
import argparse
import atexit
import concurrent.futures
import pathlib
import statistics
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import peers  # noqa: E402


def burst(base, document, clients):
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        runs = list(pool.map(lambda i: peers.chat(base, document, peers.question(f"burst-{i}"), max_tokens=16),
                             range(clients)))
    ends = [r["ttft"] + r["span"] for r in runs]
    ttfts = sorted(r["ttft"] for r in runs)
    # Requests started within milliseconds of t0; the makespan is measured from t0.
    return {"makespan": time.perf_counter() - t0, "ttftMedian": statistics.median(ttfts), "ttftMax": ttfts[-1],
            "lastEnd": max(ends)}


def during_miss(base, cached, long_document):
    """TTFT of a new question over `cached` (answered once before) sent one second after a
    chat over `long_document` (nothing cached) started, and that chat's TTFT."""
    peers.chat(base, cached, peers.question("prime"), max_tokens=1)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        miss = pool.submit(peers.chat, base, long_document, peers.question("long"), 1)
        time.sleep(1.0)
        hot = peers.chat(base, cached, peers.question("during"), max_tokens=1)
        return {"hotDuringMiss": hot["ttft"], "miss": miss.result()["ttft"]}


def measure(start, corpus_text, long_text, args):
    server = start()
    try:
        reps = [burst(server.base, f"Burst {r} {time.time()}.\n{corpus_text}", args.clients) for r in range(args.reps)]
        during = [during_miss(server.base, f"Cached {r} {time.time()}.\n{corpus_text}",
                              f"Long {r} {time.time()}.\n{long_text}") for r in range(args.reps)]
    finally:
        server.stop()
    out = {k + "Ms": 1000 * statistics.median(r[k] for r in reps) for k in ("makespan", "ttftMedian", "ttftMax")}
    out |= {k + "Ms": 1000 * statistics.median(r[k] for r in during) for k in ("hotDuringMiss", "miss")}
    return out | {"runs": reps, "duringMiss": during}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    peers.add_server_args(ap, "burst.json")
    ap.add_argument("--tokens", type=int, default=1024)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--long-tokens", type=int, default=2048, help="the prompt computed while a hot hit arrives")
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    atexit.register(lambda: [p.stop() for p in list(peers.Process.live)])
    document = peers.corpus(args.tokens, args.chars_per_token)
    long_document = peers.corpus(args.long_tokens, args.chars_per_token)
    store, slots = tempfile.mkdtemp(prefix="kvstash-burst-"), tempfile.mkdtemp(prefix="llama-burst-")
    servers = {
        "kvstash": lambda: peers.KVStash(args.kvstash, args.model, store, args.codec),
        "llamaServer1Slot": lambda: peers.LlamaServer(args.llama_server, args.model, slots, False, args.threads),
        "llamaServer4Slots": lambda: peers.LlamaServer(args.llama_server, args.model, slots, False, args.threads,
                                                       extra=("-np", "4")),
    }
    results = {name: measure(start, document, long_document, args) for name, start in servers.items()}
    report = peers.write_report(args, targetTokens=args.tokens, longTokens=args.long_tokens, clients=args.clients,
                                reps=args.reps, servers=results)
    print(f"\nMachine: {report['machine']}; {args.threads} threads; {args.clients} chats at once over a new "
          f"~{args.tokens}-token document; medians of {args.reps}\n")
    print("| server | last answer done (ms) | median TTFT (ms) | worst TTFT (ms) | hot hit during a miss, TTFT (ms) "
          "| that miss's TTFT (ms) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, r in results.items():
        print(f"| {name} | {r['makespanMs']:.0f} | {r['ttftMedianMs']:.0f} | {r['ttftMaxMs']:.0f} | "
              f"{r['hotDuringMissMs']:.0f} | {r['missMs']:.0f} |")


if __name__ == "__main__":
    main()
