#!/usr/bin/env python3
"""Plots for docs/benchmarks.md from the JSON in bench/results/.

    python3 bench/plot.py            # writes every plot below into docs/img/
    python3 bench/plot.py peers      # only docs/img/peers.png (bench/results/peers.json)

Needs matplotlib (`pip install matplotlib`). Reads only recorded results; runs no benchmark.
"""
import json
import pathlib
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
OUT = ROOT / "docs" / "img"


def load(name):
    return json.loads((RESULTS / name).read_text())


def llamacpp_prefill():
    """llama-bench prompt-processing rows: {flash_attn: [(tokens, tok/s)]}."""
    rows = {}
    for r in load("llamacpp.json"):
        if r["n_gen"] == 0 and r["n_prompt"] > 0:
            rows.setdefault(bool(r["flash_attn"]), []).append((r["n_prompt"], r["avg_ts"]))
    return {fa: sorted(v) for fa, v in rows.items()}


def plot_ttft():
    ttft = load("request-ttft.json")
    rows = sorted(ttft["rows"], key=lambda r: r["promptTokens"])
    n = [r["promptTokens"] for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(n, [r["missMs"] for r in rows], "o-", label="kvstash miss (full prefill)")
    ax.plot(n, [r["coldHitMs"] for r in rows], "s-", label="kvstash hit, cold (store on disk)")
    ax.plot(n, [r["hotHitMs"] for r in rows], "^-", label="kvstash hit, hot (RAM tier)")
    for fa, pts in llamacpp_prefill().items():
        ax.plot([p for p, _ in pts], [1000 * p / ts for p, ts in pts], "x--",
                label=f"llama.cpp miss (llama-bench pp, flash attn {'on' if fa else 'off'})")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel("time to first token, ms (median)")
    m = ttft["machine"]
    ax.set_title(f"TTFT, SmolLM2-135M Q4_1, {m['cpu']}, {m['threads']} threads", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "ttft.png", dpi=110)


def plot_prefill():
    engine = load("engine.json")
    ours = sorted((r["tokens"], r["tokensPerSecond"]) for r in engine["results"]
                  if r["kind"] == "prefill" and r["threads"] == 2)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot([p for p, _ in ours], [t for _, t in ours], "o-", label="kvstash (2 threads)")
    for fa, pts in llamacpp_prefill().items():
        ax.plot([p for p, _ in pts], [t for _, t in pts], "x--",
                label=f"llama.cpp (2 threads, flash attn {'on' if fa else 'off'})")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("prompt tokens")
    ax.set_ylabel("prefill tokens/s")
    ax.set_ylim(bottom=0)
    ax.set_title(f"Prefill, SmolLM2-135M Q4_1, {engine['machine']}", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(OUT / "prefill.png", dpi=110)


def plot_peers():
    """TTFT of miss, cold, hot per prompt size, and decode tok/s: llama-server against kvstash serve."""
    peers = load("peers.json")
    sizes = peers["sizes"]
    n = [s["promptTokens"] for s in sizes]
    servers = [("kvstash serve", lambda s: s["kvstash"], "o-"),
               ("llama-server, flash attn off", lambda s: s["llamaServer"]["flashAttnOff"], "x--"),
               ("llama-server, flash attn on", lambda s: s["llamaServer"]["flashAttnOn"], "+:")]
    rows = [("missMs", "miss"), ("cold_evictMs", "cold hit, files evicted"), ("coldMs", "cold hit"),
            ("cold_otherMs", "cold hit, slot primed with another question"), ("hotMs", "hot hit, new question")]
    rows = [(key, title) for key, title in rows if all(key in s["kvstash"] for s in sizes)]
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(3 * (len(rows) + 1), 3.6))
    for ax, (key, title) in zip(axes, rows):
        for label, pick, style in servers:
            ax.plot(n, [pick(s)[key] for s in sizes], style, label=label)
        ax.set_title(f"TTFT, {title}", fontsize=9)
        ax.set_ylabel("ms")
        ax.set_ylim(bottom=0)
    ax = axes[-1]
    for label, pick, style in servers:
        ax.plot(n, [pick(s).get("decodeTokensPerSecond") or 0 for s in sizes], style, label=label)
    ax.set_title("decode after the prompt", fontsize=9)
    ax.set_ylabel("tokens/s")
    ax.set_ylim(bottom=0)
    for ax in axes:
        ax.set_xlabel("prompt tokens")
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{peers['model']} over HTTP, {peers['threads']} threads, {peers['machine']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(OUT / "peers.png", dpi=100)


PLOTS = {"ttft": plot_ttft, "prefill": plot_prefill, "peers": plot_peers}

if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for name in sys.argv[1:] or PLOTS:
        PLOTS[name]()
        print(f"wrote {OUT / (name + '.png')}")
