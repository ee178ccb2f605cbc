"""Warmline in front of a real inference engine: llama-cpp-python's
OpenAI-compatible server with a tiny self-made model (tests/engine/), as an
upstream of `kind=openai`. Real tokenization, sampling, streaming and timings;
the official `openai` client on the other end.

    client ──► warmline ──► llama_cpp.server (one thread, tiny.gguf)

Needs WARMLINE_ENGINE_PYTHON and WARMLINE_ENGINE_MODEL, which
`tests/engine/setup.sh` prints (tests/clients/run.sh sets them); without them
the module is skipped. Generations are counted from the engine's own access
log (one `POST /v1/chat/completions` line per request it received).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import socket
import tempfile
import time
import uuid
from pathlib import Path
from typing import Iterator

import httpx
import ollama
import openai
import pytest

from conftest import BIN_DIR, WARMLINE_READY, Daemon

ENGINE_PYTHON = os.environ.get("WARMLINE_ENGINE_PYTHON")
ENGINE_MODEL = os.environ.get("WARMLINE_ENGINE_MODEL")
pytestmark = pytest.mark.skipif(
    not (ENGINE_PYTHON and ENGINE_MODEL),
    reason="no engine: run tests/engine/setup.sh (tests/clients/run.sh does)",
)

ENGINE_READY = re.compile(r"Uvicorn running on (?P<url>http://\S+:\d+)")
GENERATION = '"POST /v1/chat/completions HTTP/1.1"'
MODEL = "tiny"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Engine:
    """One llama-cpp-python server on a fixed port (so it can be restarted
    where Warmline expects it)."""

    def __init__(self, workdir: Path, interrupt: bool = False, embedding: bool = False):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.interrupt = interrupt
        self.embedding = embedding
        self.workdir = workdir
        self.daemon: Daemon | None = None
        self.generations_before = 0

    def start(self) -> "Engine":
        argv = [
            ENGINE_PYTHON, "-m", "llama_cpp.server",
            "--model", ENGINE_MODEL, "--model_alias", MODEL,
            "--host", "127.0.0.1", "--port", str(self.port),
            "--n_threads", "1", "--n_ctx", "2048",
            "--interrupt_requests", "true" if self.interrupt else "false",
            "--verbose", "false",
        ]
        if self.embedding:
            argv += ["--embedding", "true"]
        if self.daemon is not None:
            self.generations_before += self.daemon.count(GENERATION)
        self.daemon = Daemon(f"engine-{self.port}", argv, dict(os.environ), "stderr", ENGINE_READY)
        self.daemon.start()
        return self

    def generations(self) -> int:
        """Chat requests the engine received, over all its runs."""
        return self.generations_before + (self.daemon.count(GENERATION) if self.daemon else 0)

    def generations_reaching(self, expected: int, within: float = 5.0) -> int:
        """The count once it reaches `expected` (or `within` seconds passed), and a
        moment later, so one more does not go unseen: the engine logs a request
        after answering it, and its log is read by another thread."""
        deadline = time.monotonic() + within
        while self.generations() < expected and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
        return self.generations()

    def kill(self) -> None:
        if self.daemon and self.daemon.proc and self.daemon.proc.poll() is None:
            self.daemon.proc.send_signal(signal.SIGKILL)
            self.daemon.proc.wait(timeout=5)

    def stop(self) -> None:
        if self.daemon:
            self.daemon.stop()


class Gateway:
    def __init__(self, workdir: Path, engines: list[Engine]):
        home = workdir / f"warmline-{uuid.uuid4().hex[:8]}"
        home.mkdir()
        argv = [str(BIN_DIR / "warmline"), "serve", "--listen", "127.0.0.1:0"]
        for engine in engines:
            argv += ["--upstream", f"{engine.url} kind=openai"]
        env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / "config"),
               "XDG_STATE_HOME": str(home / "state")}
        self.daemon = Daemon("warmline", argv, env, "stdout", WARMLINE_READY)
        self.url = self.daemon.start()["url"]
        self.http = httpx.Client(base_url=self.url, timeout=30)
        # Caching needs the engines' model lists (the digests in the keys).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            health = self.http.get("/warmline/health").json()
            if all("tiny:latest" in u["loaded"] for u in health["upstreams"]):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the engines' models never showed: {health}")

    def client(self, **kw) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key="unused", max_retries=0, timeout=30, **kw)

    def stop(self) -> None:
        self.http.close()
        self.daemon.stop()


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="warmline-engine-"))
    yield path


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Engine, Gateway]]:
    """One engine (streams queue, none interrupted) behind one gateway, shared by
    the tests that leave both running."""
    work = Path(tempfile.mkdtemp(prefix="warmline-engine-"))
    engine = Engine(work, embedding=True).start()
    gateway = Gateway(work, [engine])
    yield engine, gateway
    gateway.stop()
    engine.stop()


def chat(prompt: str, **extra) -> dict:
    return {"model": MODEL, "messages": [{"role": "user", "content": prompt}], **extra}


def unique(prompt: str) -> str:
    """A prompt no earlier test sent (the cache and the engine's prefix cache
    would otherwise answer it)."""
    return f"{prompt} {uuid.uuid4().hex[:6]}"


def sse_text(raw: bytes) -> tuple[str, list[str | None]]:
    """The text a raw SSE body streams, and each chunk's finish_reason."""
    text, reasons = [], []
    for line in raw.decode().splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        choice = json.loads(line[6:])["choices"][0]
        text.append((choice.get("delta") or {}).get("content") or "")
        reasons.append(choice.get("finish_reason"))
    return "".join(text), reasons


def test_the_engine_is_an_upstream_with_its_models(pair):
    engine, gateway = pair
    health = gateway.http.get("/warmline/health").json()
    (upstream,) = health["upstreams"]
    assert upstream["url"] == engine.url
    assert upstream["reachable"] is True
    assert upstream["loaded"] == ["tiny:latest"]
    models = gateway.client().models.list()
    assert [m.id for m in models.data] == [MODEL]


def test_a_deterministic_answer_is_replayed_byte_for_byte(pair):
    engine, gateway = pair
    body = chat(unique("Tell me about the cache."), temperature=0, max_tokens=16)
    before = engine.generations()
    first = gateway.http.post("/v1/chat/completions", json=body)
    second = gateway.http.post("/v1/chat/completions", json=body)
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.headers["x-warmline-cache"] == "miss"
    assert second.headers["x-warmline-cache"] == "hit"
    assert second.content == first.content
    assert engine.generations_reaching(before + 1) - before == 1
    # The official client reads the replay like the original.
    replay = gateway.client().chat.completions.with_raw_response.create(**body)
    assert replay.headers["x-warmline-cache"] == "hit"
    parsed = replay.parse()
    assert parsed.choices[0].message.content == first.json()["choices"][0]["message"]["content"]
    assert parsed.choices[0].message.content.strip(), "a greedy reply of the tiny model has words"


def test_a_stream_replay_is_the_same_bytes_and_the_same_text(pair):
    engine, gateway = pair
    prompt = unique("Say hello in five words.")
    body = chat(prompt, temperature=0, max_tokens=12, stream=True)
    before = engine.generations()
    with gateway.http.stream("POST", "/v1/chat/completions", json=body) as live:
        assert live.headers["x-warmline-cache"] == "miss"
        live_bytes = live.read()
    with gateway.http.stream("POST", "/v1/chat/completions", json=body) as replay:
        assert replay.headers["x-warmline-cache"] == "hit"
        replay_bytes = replay.read()
    assert replay_bytes == live_bytes
    assert engine.generations_reaching(before + 1) - before == 1
    text, reasons = sse_text(live_bytes)
    assert reasons[-1] in ("stop", "length")
    # Temperature 0: the engine streams what it answers whole.
    whole = gateway.client().chat.completions.create(**chat(prompt, temperature=0, max_tokens=12))
    assert whole.choices[0].message.content == text
    # The official client's streaming reader gets the same text from the replay.
    streamed = gateway.client().chat.completions.create(**body)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == text


def test_a_sampled_request_is_never_cached(pair):
    engine, gateway = pair
    body = chat("Say something.", temperature=0.9, max_tokens=8)
    before = engine.generations()
    for _ in range(3):
        answer = gateway.http.post("/v1/chat/completions", json=body)
        assert answer.status_code == 200
        assert answer.headers["x-warmline-cache"] == "bypass"
    assert engine.generations_reaching(before + 3) - before == 3


def test_identical_concurrent_requests_share_one_generation(pair):
    engine, gateway = pair
    body = chat(unique("Tell me a story about a dog."), temperature=0, max_tokens=64, stream=True)
    before = engine.generations()

    def one(_: int) -> tuple[str, str]:
        with httpx.Client(base_url=gateway.url, timeout=30) as http:
            with http.stream("POST", "/v1/chat/completions", json=body) as answer:
                return answer.headers["x-warmline-cache"], sse_text(answer.read())[0]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    texts = {text for _, text in results}
    assert len(texts) == 1 and texts.pop().strip()
    outcomes = sorted(outcome for outcome, _ in results)
    assert outcomes.count("miss") == 1, outcomes
    assert set(outcomes) <= {"miss", "coalesced", "hit"}, outcomes
    assert engine.generations_reaching(before + 1) - before == 1


def test_a_stream_the_engine_ends_early_is_passed_on_but_never_cached(workdir):
    # llama-cpp-python's default: a newer request interrupts the stream in
    # progress, which then ends with [DONE] but no finish_reason.
    engine = Engine(workdir, interrupt=True).start()
    gateway = Gateway(workdir, [engine])
    try:
        body = chat(unique("Tell me everything."), temperature=0, max_tokens=1500, stream=True)
        with gateway.http.stream("POST", "/v1/chat/completions", json=body) as first:
            assert first.headers["x-warmline-cache"] == "miss"
            chunks = first.iter_bytes()
            received = next(chunks)
            # Straight to the engine: a newer request of its own.
            httpx.post(engine.url + "/v1/chat/completions", json=chat("hi", max_tokens=1), timeout=30)
            received += b"".join(chunks)
        text, reasons = sse_text(received)
        assert received.rstrip().endswith(b"data: [DONE]")
        assert not any(reasons), "the engine cut the stream short, without a reason"
        assert len(text.split()) < 1500
        again = gateway.http.post(
            "/v1/chat/completions", json={**body, "stream": True}, headers={"Connection": "close"}
        )
        assert again.headers["x-warmline-cache"] != "hit", "an incomplete stream was cached"
    finally:
        gateway.stop()
        engine.stop()


def test_an_engine_killed_mid_stream_ends_it_cleanly_and_traffic_returns(workdir):
    engine = Engine(workdir).start()
    gateway = Gateway(workdir, [engine])
    try:
        body = chat(unique("Tell me everything."), temperature=0, max_tokens=1900, stream=True)
        client = gateway.client()
        received = ""
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            for chunk in client.chat.completions.create(**body):
                if chunk.choices and chunk.choices[0].delta.content:
                    received += chunk.choices[0].delta.content
                    if engine.daemon.proc.poll() is None:
                        engine.kill()
                if chunk.choices and chunk.choices[0].finish_reason:
                    pytest.fail("the stream finished although its engine died")
        assert received, "part of the answer came before the engine died"
        engine.start()
        deadline = time.monotonic() + 20
        while True:
            answer = gateway.http.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 4})
            if answer.status_code == 200:
                break
            assert time.monotonic() < deadline, f"traffic never returned: {answer.status_code} {answer.text}"
            time.sleep(0.2)
        replay = gateway.http.post("/v1/chat/completions", json=body)
        assert replay.headers["x-warmline-cache"] != "hit", "a broken stream was cached"
    finally:
        gateway.stop()
        engine.stop()


def test_two_engines_fail_over_with_no_client_error(workdir):
    first, second = Engine(workdir).start(), Engine(workdir).start()
    gateway = Gateway(workdir, [first, second])
    try:
        client = gateway.client()
        for i in range(24):
            if i == 8:
                first.kill()
            answer = client.chat.completions.create(**chat(f"request {i}", temperature=0.8, max_tokens=4))
            assert answer.choices[0].finish_reason in ("stop", "length")
        assert second.generations_reaching(16) >= 16
    finally:
        gateway.stop()
        first.stop()
        second.stop()


def ollama_client(gateway: Gateway) -> ollama.Client:
    return ollama.Client(host=gateway.url, timeout=30)


def test_the_ollama_client_chats_generates_and_embeds_through_an_engine(pair):
    engine, gateway = pair
    client = ollama_client(gateway)
    options = {"temperature": 0, "num_predict": 8}
    messages = [{"role": "user", "content": unique("Tell me about the sea.")}]
    whole = client.chat(model=MODEL, messages=messages, options=options)
    assert whole.done and whole.done_reason == "length"
    assert whole.message.role == "assistant" and whole.message.content.strip()
    assert whole.eval_count == 8 and whole.prompt_eval_count > 0
    assert whole.total_duration > 0
    chunks = list(client.chat(model=MODEL, messages=messages, options=options, stream=True))
    assert "".join(c.message.content for c in chunks) == whole.message.content
    assert chunks[-1].done and chunks[-1].done_reason == "length" and chunks[-1].eval_count == 8
    assert all(not c.done for c in chunks[:-1])

    prompt = unique("Once upon a time")
    generated = client.generate(model=MODEL, prompt=prompt, options=options)
    assert generated.done and generated.response.strip()
    streamed = list(client.generate(model=MODEL, prompt=prompt, options=options, stream=True))
    assert "".join(c.response for c in streamed) == generated.response

    embedded = client.embed(model=MODEL, input=["hello world", "a lazy dog"])
    assert len(embedded.embeddings) == 2
    for vector in embedded.embeddings:
        assert abs(sum(x * x for x in vector) - 1.0) < 1e-6, "Ollama's /api/embed vectors have length 1"
    legacy = client.embeddings(model=MODEL, prompt="hello world")
    assert len(legacy.embedding) == len(embedded.embeddings[0])

    assert [m.model for m in client.list().models] == [MODEL]
    assert [m.model for m in client.ps().models] == [MODEL]
    assert "FROM tiny" in client.show(MODEL).modelfile


def test_the_same_request_in_either_api_gets_the_same_answer(pair):
    engine, gateway = pair
    prompt = unique("What is warm?")
    native = ollama_client(gateway).chat(
        model=MODEL, messages=[{"role": "user", "content": prompt}],
        options={"temperature": 0, "num_predict": 10},
    )
    openai_answer = gateway.client().chat.completions.create(**chat(prompt, temperature=0, max_tokens=10))
    assert native.message.content == openai_answer.choices[0].message.content


def test_a_native_answer_from_an_engine_is_cached_byte_for_byte(pair):
    engine, gateway = pair
    for stream in (False, True):
        body = {
            "model": MODEL, "stream": stream,
            "messages": [{"role": "user", "content": unique("Count the stars.")}],
            "options": {"temperature": 0, "num_predict": 6},
        }
        before = engine.generations()
        first = gateway.http.post("/api/chat", json=body)
        second = gateway.http.post("/api/chat", json=body)
        assert (first.headers["x-warmline-cache"], second.headers["x-warmline-cache"]) == ("miss", "hit")
        assert second.content == first.content
        assert engine.generations_reaching(before + 1) - before == 1
        content_type = "application/x-ndjson" if stream else "application/json; charset=utf-8"
        assert first.headers["content-type"] == content_type


def test_what_cannot_be_sent_to_an_engine_is_a_400_in_ollamas_shape(pair):
    engine, gateway = pair
    client = ollama_client(gateway)
    before = engine.generations()
    with pytest.raises(ollama.ResponseError) as refused:
        client.chat(model=MODEL, messages=[{"role": "user", "content": "x"}], options={"num_ctx": 8192})
    assert refused.value.status_code == 400
    assert "options.num_ctx" in refused.value.error
    with pytest.raises(ollama.ResponseError) as pulled:
        client.pull("llama3.2")
    assert pulled.value.status_code == 400 and "no Ollama host" in pulled.value.error
    assert engine.generations_reaching(before + 1, within=0.5) == before


def test_the_openai_client_completes_and_embeds_through_an_engine(pair):
    engine, gateway = pair
    client = gateway.client()
    prompt = unique("Once upon a time")
    first = client.completions.with_raw_response.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=8)
    again = client.completions.with_raw_response.create(model=MODEL, prompt=prompt, temperature=0, max_tokens=8)
    assert (first.headers["x-warmline-cache"], again.headers["x-warmline-cache"]) == ("miss", "hit")
    assert again.http_response.content == first.http_response.content
    assert first.parse().choices[0].text.strip()
    embedded = client.embeddings.create(model=MODEL, input=["hello world", "a lazy dog"])
    assert [len(e.embedding) for e in embedded.data] == [64, 64]
