#!/usr/bin/env python3
"""llama-server against `kvstash serve`, both over HTTP, on one model and one document, in one run.

    bench/peers            # builds what is missing, then runs this script
    bench/peers.py --kvstash BIN --llama-server BIN --model GGUF [--tokens 1024 4096 7800] [--reps 5]

For each document size, with the document as the system turn and a short question as the user
turn (streaming chat completions, TTFT measured client side to the first content chunk):

  miss        nothing cached: kvstash under a fresh cache_salt, llama-server with a nonce in front
              of the document (so no prefix of the prompt matches anything it holds)
  cold        a new process: kvstash reads the precomputed chunks from its store; llama-server
              restores the slot saved after the document was first evaluated, then answers
              (restore time + TTFT). Server start and model load are not counted for either;
              both run their default warm-up pass at start.
              Both were primed the same way: after the document, one question was asked
              (PRIME), and what it left is restored before every cold row (llama-server: the
              slot file saved after it; kvstash: a copy of the store taken after it, which
              holds the question's prompt tail).
  cold-evict  as cold, with the store's files / the slot file dropped from the page cache first
              (posix_fadvise DONTNEED; resident bytes checked with fincore)
  cold-other  as cold, with llama-server's slot saved after a question that shares no words with
              the measured ones (OTHER_PRIME): its restored slot then holds the document and the
              chat template's next turn, but not the measured questions' common stem ("In one
              sentence: what does the document say about topic"), which the slot of `cold` holds
              and reuses. kvstash's store is primed with OTHER_PRIME likewise.
  hot         the same process, a new question over the same document
  repeat      the same question again
  decode      tokens per second of a 64-token answer after the document (first to last token)

Requests to one process go out THINK seconds after the previous answer ended, as from a client
that reads each answer: kvstash keeps a request's prompt (write-back, prompt tail, RAM tier)
after its answer, so a request sent the instant the previous answer ends would wait for that
and time it as its own (llama-server does nothing after an answer; the pause costs it nothing).

llama-server runs with flash attention off and on, one slot, the model's context, the same
thread count. Writes bench/results/peers.json and prints a markdown table; bench/plot.py draws
docs/img/peers.png from it. Never run by CI.
"""
import argparse
import atexit
import http.client
import json
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
LICENSES = ["GPL-3", "GPL-2", "Apache-2.0", "LGPL-2.1", "MPL-2.0", "Artistic"]
ANSWER_LONG = "Explain, point by point and in detail, what the document requires of someone who shares it."
OTHER_PRIME = "Summarize the document."


def corpus(tokens, chars_per_token):
    """The GPL-3 text (then more license texts) cut at a line near `tokens` tokens."""
    text = "\n\n".join(pathlib.Path("/usr/share/common-licenses", name).read_text() for name in LICENSES)
    cut = int(tokens * chars_per_token)
    if cut >= len(text):
        raise SystemExit(f"not enough license text for {tokens} tokens")
    return text[: text.rfind("\n", 0, cut)]


def question(tag):
    return f"In one sentence: what does the document say about topic {tag}?"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(base, path, body, timeout=900):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=timeout).read())


def get(base, path):
    return json.loads(urllib.request.urlopen(base + path, timeout=60).read())


MODEL_IDS = {}


def served_model(base):
    if base not in MODEL_IDS:
        MODEL_IDS[base] = get(base, "/v1/models")["data"][0]["id"]
    return MODEL_IDS[base]


def chat(base, system, user, max_tokens=1, extra=None):
    """One streaming chat completion. Returns ttft, seconds from first to last token, usage, timings."""
    body = {"model": served_model(base), "stream": True, "max_tokens": max_tokens, "temperature": 0,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
    body.update(extra or {})
    url = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=900)
    t0 = time.perf_counter()
    conn.request("POST", "/v1/chat/completions", json.dumps(body), {"content-type": "application/json"})
    resp = conn.getresponse()
    if resp.status != 200:
        raise RuntimeError(f"{base}: HTTP {resp.status}: {resp.read()[:300]!r}")
    first = last = None
    usage, timings, pieces = None, None, 0
    for raw in resp:
        line = raw.decode().strip()
        if not line.startswith("data:") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[5:])
        if chunk.get("choices") and chunk["choices"][0].get("delta", {}).get("content"):
            last = time.perf_counter()
            pieces += 1
            first = first or last
        usage = chunk.get("usage") or usage
        timings = chunk.get("timings") or timings
    conn.close()
    return {"ttft": first - t0, "span": last - first, "pieces": pieces, "usage": usage, "timings": timings}


def evict(paths):
    """Drops the files' pages from the page cache; returns the bytes still resident."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", *map(str, paths)],
                         capture_output=True, text=True).stdout
    return sum(int(x) for x in out.split())


def files_under(directory):
    return [p for p in pathlib.Path(directory).rglob("*") if p.is_file()]


class Process:
    live = set()

    def __init__(self, argv, env=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, **(env or {})})
        Process.live.add(self)

    def stop(self):
        Process.live.discard(self)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class KVStash(Process):
    def __init__(self, binary, model, store, codec):
        super().__init__([binary, "serve", "--store", store, "--model", model, "--port", "0", "--codec", codec])
        for line in self.proc.stdout:
            m = re.search(r"serving \S+ on (http://\S+)", line)
            if m:
                self.base = m.group(1)
                break
        else:
            raise RuntimeError("kvstash serve did not start")
        # Keep draining its output so the pipe never blocks the server.
        self.drain = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)


class LlamaServer(Process):
    def __init__(self, binary, model, slots_dir, flash, threads, extra=()):
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        libdir = str(pathlib.Path(binary).parent)
        super().__init__([binary, "-m", model, "--host", "127.0.0.1", "--port", str(port), "-np", "1",
                          "-t", str(threads), "-fa", "on" if flash else "off", "--slot-save-path", slots_dir,
                          "--log-disable", *extra],
                         env={"LD_LIBRARY_PATH": libdir})
        self.drain = subprocess.Popen(["cat"], stdin=self.proc.stdout, stdout=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if get(self.base, "/health").get("status") == "ok":
                    return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError("llama-server did not start")

    def restore(self, name):
        t0 = time.perf_counter()
        post(self.base, "/slots/0?action=restore", {"filename": name})
        return time.perf_counter() - t0


def decode_rate(run):
    """Tokens per second from the first to the last streamed token."""
    n = (run["usage"] or {}).get("completion_tokens") or run["pieces"]
    return (n - 1) / run["span"] if n > 1 and run["span"] > 0 else None


class KVStashSetup:
    """kvstash serve on a store holding the precomputed document; a miss uses a fresh salt."""

    def __init__(self, args):
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="kvstash-peers-")

    def start(self):
        return KVStash(self.args.kvstash, self.args.model, self.dir, self.args.codec)

    def prepare(self, document, tag):
        server = self.start()
        job = post(server.base, "/v1/precompute", {"documents": [{"id": "doc", "text": document}]})
        while (status := get(server.base, "/v1/precompute/" + job["id"]))["status"] in ("queued", "running"):
            time.sleep(0.1)
        server.stop()
        if status["status"] != "succeeded":
            raise RuntimeError(f"precompute failed: {status['error']}")
        # Value bytes of the document as the store counts them (its files may still be a write-ahead log).
        stats = subprocess.run([self.args.kvstash, "stats", "--store", self.dir, "--json"], check=True,
                               capture_output=True, text=True).stdout
        # Primed as llama-server's slots are: one question after the document, in a copy each.
        precomputed = self.dir + ".precomputed"
        shutil.copytree(self.dir, precomputed)
        self.primed = {}
        for slot, prime in (("doc.bin", question(f"{tag}-prime")), ("doc-other.bin", OTHER_PRIME)):
            self.reset_to(precomputed)
            server = self.start()
            chat(server.base, document, prime)
            server.stop()
            # Into table files, as a store that has run a while holds its chunks: a fresh
            # store's write-ahead log would be replayed into memory at open, and a cold hit
            # would then read memory, not the files the eviction rows drop.
            subprocess.run([self.args.kvstash, "compact", "--store", self.dir], check=True, capture_output=True)
            self.primed[slot] = f"{self.dir}.{slot}"
            shutil.copytree(self.dir, self.primed[slot])
        shutil.rmtree(precomputed)
        return {"storeBytes": json.loads(stats)["bytes"], "storedTokens": status["tokens_done"]}

    def reset_to(self, snapshot):
        shutil.rmtree(self.dir, ignore_errors=True)
        shutil.copytree(snapshot, self.dir)

    def restore(self, slot):
        """The store as the prime left it (before the server starts)."""
        self.reset_to(self.primed[slot])

    def cold(self, server, document, q, slot="doc.bin"):
        return chat(server.base, document, q)

    def miss(self, server, document, q, r):
        return chat(server.base, document, q, extra={"cache_salt": f"miss-{r}-{time.time()}"})

    def files(self):
        return files_under(self.dir)

    def cleanup(self):
        for path in [self.dir, *getattr(self, "primed", {}).values()]:
            shutil.rmtree(path, ignore_errors=True)


class LlamaSetup:
    """llama-server with the slot saved after the document; a cold hit restores it first."""

    def __init__(self, args, flash, extra=()):
        self.args, self.flash, self.extra = args, flash, extra
        self.dir = tempfile.mkdtemp(prefix="llama-slots-")

    def start(self):
        return LlamaServer(self.args.llama_server, self.args.model, self.dir, self.flash, self.args.threads, self.extra)

    def prepare(self, document, tag):
        server = self.start()
        chat(server.base, document, question(f"{tag}-prime"))
        saved = post(server.base, "/slots/0?action=save", {"filename": "doc.bin"})
        chat(server.base, document, OTHER_PRIME)
        post(server.base, "/slots/0?action=save", {"filename": "doc-other.bin"})
        server.stop()
        return {"slotFileBytes": self.files()[0].stat().st_size, "storedTokens": saved.get("n_saved")}

    def restore(self, slot):
        """Nothing before the server starts: the slot is restored through it, timed."""

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def cold(self, server, document, q, slot="doc.bin"):
        restore = server.restore(slot)
        run = chat(server.base, document, q)
        run["restore"] = restore
        run["ttft"] += restore
        return run

    def miss(self, server, document, q, r):
        return chat(server.base, f"Request {r} at {time.time()}.\n" + document, q)

    def files(self):
        return [pathlib.Path(self.dir, "doc.bin")]


# Seconds between an answer's end and the next request to the same process (see the docstring).
THINK = 0.25


def measure(setup, args, document, tag):
    """Per repetition: a new process for cold, hot, repeat, decode and (the first miss_reps
    times) a miss; then the files evicted and a new process for the evicted cold hit; then a
    new process for the cold hit after the other prime."""
    runs = {k: [] for k in ("miss", "cold", "cold_evict", "cold_other", "hot", "repeat", "decode")}
    try:
        info = setup.prepare(document, tag)
        resident = []
        for r in range(args.reps):
            setup.restore("doc.bin")
            server = setup.start()
            runs["cold"].append(setup.cold(server, document, question(f"{tag}-cold-{r}")))
            time.sleep(THINK)
            runs["hot"].append(chat(server.base, document, question(f"{tag}-hot-{r}")))
            time.sleep(THINK)
            runs["repeat"].append(chat(server.base, document, question(f"{tag}-hot-{r}")))
            time.sleep(THINK)
            runs["decode"].append(chat(server.base, document, ANSWER_LONG, max_tokens=64))
            if r < args.miss_reps:
                time.sleep(THINK)
                runs["miss"].append(setup.miss(server, document, question(f"{tag}-miss-{r}"), r))
            server.stop()
            setup.restore("doc.bin")
            resident.append(evict(setup.files()))
            server = setup.start()
            runs["cold_evict"].append(setup.cold(server, document, question(f"{tag}-evict-{r}")))
            server.stop()
            setup.restore("doc-other.bin")
            server = setup.start()
            runs["cold_other"].append(setup.cold(server, document, question(f"{tag}-other-{r}"), slot="doc-other.bin"))
            server.stop()
        return runs, {**info, "residentAfterEvict": resident}
    finally:
        setup.cleanup()


def summary(runs):
    out = {}
    for kind, rs in runs.items():
        if not rs:
            continue
        if kind == "decode":
            rates = [x for x in map(decode_rate, rs) if x]
            out["decodeTokensPerSecond"] = statistics.median(rates) if rates else None
            out["decodeTokens"] = [(r["usage"] or {}).get("completion_tokens") or r["pieces"] for r in rs]
        else:
            out[kind + "Ms"] = 1000 * statistics.median(r["ttft"] for r in rs)
    return out


def prompt_tokens(runs):
    usage = runs["cold"][0]["usage"] or {}
    return usage.get("prompt_tokens")


def machine():
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    return next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name")), "unknown")


def add_server_args(ap, out):
    """The options of every script that runs kvstash serve against llama-server: the two
    binaries, the model, kvstash's codec, threads, the corpus's characters per token, and the
    JSON written (`out` under bench/results by default)."""
    ap.add_argument("--kvstash", required=True)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--codec", default="int8")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--chars-per-token", type=float, default=4.0)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / out))


def write_report(args, **fields):
    """Writes the run's JSON to `args.out`: machine, threads, codec, model and BLAS core, then
    `fields`. Returns it."""
    report = {"machine": machine(), "threads": args.threads, "codec": args.codec, "model": os.path.basename(args.model),
              "blasCore": os.environ.get("OPENBLAS_CORETYPE", "auto"), **fields}
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(report, indent=1))
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_server_args(ap, "peers.json")
    ap.add_argument("--tokens", type=int, nargs="+", default=[1024, 4096, 7800])
    ap.add_argument("--reps", type=int, default=5, help="repetitions of each hit (median reported)")
    ap.add_argument("--miss-reps", type=int, default=2, help="repetitions of the miss (the slow row)")
    args = ap.parse_args()
    atexit.register(lambda: [p.stop() for p in list(Process.live)])
    sizes = []
    for tokens in args.tokens:
        document, tag = corpus(tokens, args.chars_per_token), f"t{tokens}"
        ours, ours_info = measure(KVStashSetup(args), args, document, tag)
        peers = {}
        for flash in (False, True):
            runs, info = measure(LlamaSetup(args, flash), args, document, tag)
            peers["flashAttnOn" if flash else "flashAttnOff"] = {**summary(runs), **info,
                                                                  "promptTokens": prompt_tokens(runs),
                                                                  "cachedOnHot": runs["hot"][0]["timings"],
                                                                  "runs": runs}
        size = {"targetTokens": tokens, "promptTokens": prompt_tokens(ours),
                "kvstash": {**summary(ours), **ours_info, "runs": ours}, "llamaServer": peers}
        sizes.append(size)
        print(json.dumps({k: v for k, v in size["kvstash"].items() if k != "runs"}), flush=True)
    print_table(write_report(args, reps=args.reps, missReps=args.miss_reps, sizes=sizes))


def print_table(report):
    print(f"\nMachine: {report['machine']}; {report['threads']} threads; kvstash codec {report['codec']}; "
          f"medians of {report['reps']} (miss: {report['missReps']})\n")
    print("| prompt tokens | row | llama-server fa off | llama-server fa on | kvstash | kvstash / better llama |")
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for s in report["sizes"]:
        ours, off, on = s["kvstash"], s["llamaServer"]["flashAttnOff"], s["llamaServer"]["flashAttnOn"]
        for key, label in (("missMs", "miss"), ("coldMs", "cold hit"), ("cold_evictMs", "cold hit, evicted"),
                           ("cold_otherMs", "cold hit, slot saved after another question"),
                           ("hotMs", "hot hit, new question"), ("repeatMs", "exact repeat")):
            if key not in ours:
                continue
            best = min(off[key], on[key])
            print(f"| {s['promptTokens']} | {label} (ms) | {off[key]:.0f} | {on[key]:.0f} | {ours[key]:.0f} | "
                  f"{ours[key] / best:.2f} |")
        rates = [x.get("decodeTokensPerSecond") or 0 for x in (off, on, ours)]
        print(f"| {s['promptTokens']} | decode (tok/s) | {rates[0]:.1f} | {rates[1]:.1f} | {rates[2]:.1f} | "
              f"{rates[2] / max(rates[:2]):.2f} |")
        per_token = ours["storeBytes"] / ours["storedTokens"], off["slotFileBytes"] / off["storedTokens"]
        print(f"| {s['promptTokens']} | stored bytes per token | {per_token[1]:.0f} | | {per_token[0]:.0f} | "
              f"{per_token[0] / per_token[1]:.2f} |")


if __name__ == "__main__":
    main()
