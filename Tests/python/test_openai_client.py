"""Black-box tests of `kvstash serve` with the official `openai` client, unchanged.

The server runs as a subprocess on a free loopback port (`--port 0`; it prints the bound
port). Needs KVSTASH_BIN (the built executable) and KVSTASH_MODEL (the default model);
scripts/test.sh sets both. Without them the tests skip, except under CI where they fail.
"""

import json
import os
import re
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import http.client
import urllib.error
import urllib.request
from urllib.parse import urlparse

import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

ADMIN_TOKEN = "test-admin-token"


class _Resp:
    def __init__(self, status, body):
        self.status_code, self.body = status, body

    @property
    def text(self):
        return self.body.decode()

    def json(self):
        return json.loads(self.body)


def _http(method, url, body=None, headers=None, json_body=None):
    """A plain HTTP request with the standard library (raw bytes, any status)."""
    headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        headers.setdefault("content-type", "application/json")
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return _Resp(r.status, r.read())
    except urllib.error.HTTPError as e:
        return _Resp(e.code, e.read())


def _need(var):
    value = os.environ.get(var)
    if not value:
        message = f"{var} is not set (scripts/test.sh sets it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return value


@pytest.fixture(scope="module")
def server():
    binary = _need("KVSTASH_BIN")
    model = _need("KVSTASH_MODEL")
    store = tempfile.mkdtemp(prefix="kvstash-pytest-")
    proc = subprocess.Popen(
        [binary, "serve", "--store", store, "--model", model, "--port", "0", "--admin-token", ADMIN_TOKEN],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = None
    deadline = time.time() + 120
    lines = []
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"serving (\S+) on (http://\S+)", line)
        if match:
            model_id, base = match.group(1), match.group(2)
            break
    if base is None:
        proc.kill()
        pytest.fail("server did not start:\n" + "".join(lines))
    yield {"base": base, "model": model_id, "proc": proc}
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server["base"] + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_models_lists_the_served_model(client, server):
    ids = [m.id for m in client.models.list().data]
    assert ids == [server["model"]]


def test_completion(client, server):
    r = client.completions.create(model=server["model"], prompt="The capital of France is",
                                  max_tokens=8, temperature=0)
    assert r.object == "text_completion"
    assert len(r.choices) == 1 and r.choices[0].text.strip()
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= 8
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    assert r.usage.prompt_tokens_details.cached_tokens >= 0
    # Greedy is deterministic: the same request gives the same text.
    again = client.completions.create(model=server["model"], prompt="The capital of France is",
                                      max_tokens=8, temperature=0)
    assert again.choices[0].text == r.choices[0].text


def test_chat_and_streaming_chat_agree(client, server):
    messages = [{"role": "system", "content": "You are a concise assistant."},
                {"role": "user", "content": "What is the capital of France?"}]
    full = client.chat.completions.create(model=server["model"], messages=messages, max_tokens=12, temperature=0)
    assert full.object == "chat.completion"
    message = full.choices[0].message
    assert message.role == "assistant" and message.content
    assert "Paris" in message.content

    stream = client.chat.completions.create(model=server["model"], messages=messages, max_tokens=12,
                                            temperature=0, stream=True, stream_options={"include_usage": True})
    pieces, finish, usage, roles = [], None, None, []
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason
    assert roles == ["assistant"]
    assert "".join(pieces) == message.content
    assert finish == full.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == full.usage.completion_tokens


def test_streaming_completion_with_stop(client, server):
    prompt = "1, 2, 3, 4, 5,"
    plain = client.completions.create(model=server["model"], prompt=prompt, max_tokens=16, temperature=0)
    text = plain.choices[0].text
    assert len(text) > 4
    stop = text[3:5]  # a stop sequence that certainly occurs
    streamed = "".join(c.choices[0].text for c in client.completions.create(
        model=server["model"], prompt=prompt, max_tokens=16, temperature=0, stop=[stop], stream=True)
        if c.choices)
    assert streamed == text[:text.index(stop)]


def test_bad_requests_get_openai_errors(client, server):
    with pytest.raises(openai.NotFoundError) as e:
        client.completions.create(model="no-such-model", prompt="hi", max_tokens=2)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model=server["model"], prompt="hi", max_tokens=2, n=2)
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model=server["model"], prompt="hi", max_tokens=10 ** 7)
    assert e.value.body["code"] == "context_length_exceeded"
    base = server["base"]
    r = _http("POST", base + "/v1/chat/completions", body=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"]
    r = _http("POST", base + "/v1/chat/completions", json_body={"model": server["model"], "messages": "hello"})
    assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
    r = _http("POST", base + "/v1/completions", body=b"x" * (5 << 20), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert _http("GET", base + "/health").json()["status"] == "ok"


def test_admin_needs_the_token(server):
    base = server["base"]
    assert _http("GET", base + "/admin/stats").status_code == 401
    assert _http("GET", base + "/admin/stats", headers={"authorization": "Bearer wrong"}).status_code == 401
    r = _http("GET", base + "/admin/stats", headers={"authorization": "Bearer " + ADMIN_TOKEN})
    assert r.status_code == 200 and "entries" in r.json()


def _metrics(base):
    families = {f.name: f for f in text_string_to_metric_families(_http("GET", base + "/metrics").text)}
    return families


def _sample(families, family, **labels):
    for s in families[family].samples:
        if s.name == family + "_total" or s.name == family:
            if all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def test_client_disconnect_cancels_generation(server):
    base = server["base"]
    before = _sample(_metrics(base), "kvstash_requests", endpoint="chat", outcome="cancelled") or 0
    body = {"model": server["model"], "stream": True, "max_tokens": 4000, "temperature": 1.0, "seed": 7,
            "messages": [{"role": "user", "content": "Write a very long story about a dragon."}]}
    url = urlparse(base)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", body=json.dumps(body), headers={"content-type": "application/json"})
    r = conn.getresponse()
    assert r.status == 200
    line = b""
    while not line.startswith(b"data: "):
        line = r.fp.readline()
    assert json.loads(line[6:])["object"] == "chat.completion.chunk"
    r.close()  # the client goes away mid-stream
    conn.close()
    # The connection is closed now; the generation must stop (well before 4000 tokens).
    deadline = time.time() + 60
    while time.time() < deadline:
        families = _metrics(base)
        if (_sample(families, "kvstash_requests", endpoint="chat", outcome="cancelled") or 0) > before \
                and _sample(families, "kvstash_active_requests") == 0:
            break
        time.sleep(0.2)
    else:
        pytest.fail("generation was not cancelled after the client disconnected")


def test_metrics_exposition_parses(client, server):
    client.completions.create(model=server["model"], prompt="Hello", max_tokens=2, temperature=0)
    families = _metrics(server["base"])
    for name in ["kvstash_requests", "kvstash_prompt_tokens", "kvstash_cached_tokens", "kvstash_prefix_hit_ratio",
                 "kvstash_time_to_first_token_seconds", "kvstash_inter_token_latency_seconds",
                 "kvstash_ram_tier_bytes", "kvstash_ram_tier_tokens", "kvstash_ram_tier_resident_tokens"]:
        assert name in families, name
    assert _sample(families, "kvstash_ram_tier_resident_tokens") > 0, "the last request's cache stays resident"
    assert families["kvstash_time_to_first_token_seconds"].type == "histogram"
    assert _sample(families, "kvstash_requests", endpoint="completions", outcome="ok") >= 1
    assert _sample(families, "kvstash_prompt_tokens") > 0


DOCUMENT = "\n".join(
    f"Section {i}. The harbour town of Vell keeps ledger {i * 7} for the grain ships, "
    "and its keeper notes the tide, the wind and the cargo of each arrival." for i in range(1, 13))
WORDS = ["apple", "river", "stone", "cloud", "bread", "horse", "lamp", "chair", "green", "music", "north", "paper",
         "salt", "tiger", "window", "yellow", "garden", "silver", "winter", "copper", "dance", "engine", "forest",
         "island", "jacket", "kettle", "umbrella", "mirror", "needle", "orange", "pepper", "rocket"]


def _ask(client, model, word, salt):
    r = client.chat.completions.create(
        model=model, max_tokens=4, temperature=0, extra_body={"cache_salt": salt},
        messages=[{"role": "system", "content": DOCUMENT},
                  {"role": "user", "content": f"{word.capitalize()}: which section mentions it?"}])
    return r.choices[0].message.content, r.usage.prompt_tokens_details.cached_tokens


def test_32_concurrent_clients_match_serial_runs_and_share_the_prefix(client, server):
    # Serial and concurrent runs use separate salts, each warmed up by the same request,
    # so both start from the same cache state.
    model = server["model"]
    warm_serial = _ask(client, model, "zebra", "py-serial")
    serial = [_ask(client, model, w, "py-serial") for w in WORDS]
    warm_concurrent = _ask(client, model, "zebra", "py-concurrent")
    assert warm_concurrent[1] == 0, "another salt's prefix must not be visible"
    assert warm_concurrent[0] == warm_serial[0]
    with ThreadPoolExecutor(max_workers=32) as pool:
        concurrent = list(pool.map(lambda w: _ask(client, model, w, "py-concurrent"), WORDS))
    assert [text for text, _ in concurrent] == [text for text, _ in serial]
    assert all(cached > 0 for _, cached in serial + concurrent), (serial, concurrent)


def test_separate_salts_do_not_share_cached_tokens(client, server):
    model = server["model"]
    assert _ask(client, model, "apple", "py-tenant-a")[1] == 0
    assert _ask(client, model, "river", "py-tenant-a")[1] > 0
    assert _ask(client, model, "river", "py-tenant-b")[1] == 0
