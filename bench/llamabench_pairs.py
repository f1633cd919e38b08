"""Rows of kvstash-enginebench against llama-bench, from runs that alternated between the two.

bench/gemma3_peers.sh and bench/decode_peers.sh run, for each repetition i, llama-bench once
(`-r 1`, writing llama-*-<i>.json) and the engine once (engine-<i>.json), llama-bench first in
odd repetitions and the engine first in even ones, so that a host that changes speed within
minutes slows both sides of a repetition alike. A row gives each side's
median over the repetitions, the ratio of the medians (against llama.cpp's better
flash-attention setting and against its default, off), and the ratio repetition by
repetition with its median.
"""
import glob
import json
import re
import statistics


def repetition(path):
    """The repetition number a file's name ends with (`engine-3.json` -> 3)."""
    return int(re.search(r"-(\d+)\.json$", path).group(1))


def load_runs(out, prefix):
    """{repetition: parsed JSON} of the files `<out>/<prefix>-<i>.json`."""
    return {repetition(p): json.load(open(p)) for p in glob.glob(f"{out}/{prefix}-*.json")}


def load_llama(out):
    """{repetition: [llama-bench result rows]} of every llama-*-<i>.json under `out`."""
    reps = {}
    for p in glob.glob(f"{out}/llama-*.json"):
        reps.setdefault(repetition(p), []).extend(json.load(open(p)))
    return reps


def row(kind, n, engine, llama, engine_match, llama_match):
    """One row: `engine_match(result)` picks the engine's result of this row, `llama_match(r)`
    llama-bench's (both flash-attention settings)."""
    ours, theirs, paired = [], {False: [], True: []}, []
    for i in sorted(engine):
        mine = [x["tokensPerSecond"] for x in engine[i]["results"] if engine_match(x)]
        peer = {bool(r["flash_attn"]): r["avg_ts"] for r in llama.get(i, []) if llama_match(r)}
        ours += mine
        for fa, ts in peer.items():
            theirs[fa].append(ts)
        if mine and peer:
            paired.append(mine[0] / max(peer.values()))
    mine, off, on = statistics.median(ours), statistics.median(theirs[False]), statistics.median(theirs[True])
    return {"kind": kind, "tokens" if kind == "prefill" else "context": n, "kvstash": mine, "kvstashRuns": ours,
            "llamacppFlashAttnOff": off, "llamacppFlashAttnOn": on,
            "llamacppRunsFlashAttnOff": theirs[False], "llamacppRunsFlashAttnOn": theirs[True],
            "ratio": mine / max(off, on), "ratioFlashAttnOff": mine / off,
            "ratioPaired": paired, "ratioPairedMedian": statistics.median(paired) if paired else None}
