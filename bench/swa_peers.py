#!/usr/bin/env python3
"""Gemma 3 (sliding-window layers) with a cached document and a new question: `kvstash serve`
against llama-server with and without `--swa-full`, over HTTP, in one run.

    bench/swa_peers.py --kvstash BIN --llama-server BIN --model GEMMA3.gguf [--tokens 4096] [--reps 3]

The measuring loop, rows and servers are bench/peers.py's (miss, cold from the store / a
restored slot, hot with a new question, exact repeat, decode), with llama-server's flash
attention off. Without `--swa-full` llama-server keeps only the sliding layers' window, so it
re-evaluates the whole prompt on reuse; the JSON records how many prompt tokens each server
evaluated on the cold and hot hits (both servers' `timings.prompt_n`). kvstash's miss over its
cold hit is also given pair by pair: repetition r's cold hit and miss run in the same process
seconds apart, so a host that changes speed between repetitions moves both. Writes bench/results/swa-peers.json and prints a markdown
table. Never run by CI; hold the CPU lock (`flock /tmp/cpu.lock`) while it runs.
"""
import argparse
import atexit
import pathlib
import statistics
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import peers  # noqa: E402

CONFIGS = (("llamaServer", ()), ("llamaServerSwaFull", ("--swa-full",)))


def evaluated(runs, row):
    """Prompt tokens the server evaluated in each run of `row` (its answers' `timings.prompt_n`)."""
    return [(r["timings"] or {}).get("prompt_n") for r in runs[row]]


def paired_ratios(runs):
    """Miss over cold hit of each repetition that ran both (same process, seconds apart)."""
    return [m["ttft"] / c["ttft"] for m, c in zip(runs["miss"], runs["cold"])]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    peers.add_server_args(ap, "swa-peers.json")
    ap.add_argument("--tokens", type=int, nargs="+", default=[4096])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--miss-reps", type=int, default=1)
    args = ap.parse_args()
    atexit.register(lambda: [p.stop() for p in list(peers.Process.live)])
    sizes = []
    for tokens in args.tokens:
        document, tag = peers.corpus(tokens, args.chars_per_token), f"s{tokens}"
        runs, info = peers.measure(peers.KVStashSetup(args), args, document, tag)
        ratios = paired_ratios(runs)
        size = {"targetTokens": tokens, "promptTokens": peers.prompt_tokens(runs),
                "kvstash": {**peers.summary(runs), **info, "hotPromptEvaluated": evaluated(runs, "hot"),
                            "coldPromptEvaluated": evaluated(runs, "cold"), "missOverColdPaired": ratios,
                            "missOverColdPairedMedian": statistics.median(ratios) if ratios else None,
                            "runs": runs}}
        for name, extra in CONFIGS:
            runs, info = peers.measure(peers.LlamaSetup(args, False, extra), args, document, tag)
            size[name] = {**peers.summary(runs), **info, "promptTokens": peers.prompt_tokens(runs),
                          "hotPromptEvaluated": evaluated(runs, "hot"), "coldPromptEvaluated": evaluated(runs, "cold"),
                          "runs": runs}
        sizes.append(size)
    report = peers.write_report(args, reps=args.reps, missReps=args.miss_reps, sizes=sizes)
    print(f"\nMachine: {report['machine']}; {args.threads} threads; kvstash codec {args.codec}; "
          f"medians of {args.reps} (miss: {args.miss_reps})\n")
    print("| prompt tokens | row | llama-server | llama-server --swa-full | kvstash |")
    print("| ---: | --- | ---: | ---: | ---: |")
    for s in sizes:
        a, b, k = s["llamaServer"], s["llamaServerSwaFull"], s["kvstash"]
        for key, label in (("missMs", "miss"), ("coldMs", "cold hit"), ("cold_evictMs", "cold hit, evicted"),
                           ("hotMs", "hot hit, new question"), ("repeatMs", "exact repeat")):
            print(f"| {s['promptTokens']} | {label} (ms) | {a[key]:.0f} | {b[key]:.0f} | {k[key]:.0f} |")
        print(f"| {s['promptTokens']} | hot hit: prompt tokens evaluated | {a['hotPromptEvaluated']} | "
              f"{b['hotPromptEvaluated']} | {k['hotPromptEvaluated']} |")
        print(f"\nkvstash miss / cold hit: {k['missMs'] / k['coldMs']:.1f}x by the medians; pair by pair "
              f"{', '.join(f'{x:.1f}x' for x in k['missOverColdPaired'])} "
              f"(median {k['missOverColdPairedMedian'] or 0:.1f}x)")


if __name__ == "__main__":
    main()
