"""The official `ollama` Python client sees the same results through warmline
as it does talking to the simulator directly."""

from __future__ import annotations

import itertools
import json

import ollama
import pytest

from compat import DETERMINISTIC, both, error_of, ollama_client, scrub

CHAT_MODEL = "llama3.2:latest"
THINKING_MODEL = "qwen3:0.6b"
EMBED_MODEL = "nomic-embed-text:latest"
BUILTIN = {CHAT_MODEL, THINKING_MODEL, EMBED_MODEL}
UNKNOWN = "no-such-model:latest"
MESSAGES = [{"role": "user", "content": "Why is the sky blue? One sentence."}]
PROMPT = "Write a haiku about a warm line."


def listed(url: str) -> list[dict]:
    # Sorted by name: the daemon orders by modified_at, which differs between
    # the two simulators by however long apart they were started.
    models = scrub(ollama_client(url).list())["models"]
    return sorted(models, key=lambda m: m["model"])


def running(url: str) -> list[dict]:
    models = scrub(ollama_client(url).ps())["models"]
    return sorted(models, key=lambda m: m["model"])


def test_list(endpoints):
    direct, gateway = both(endpoints, listed)
    assert direct == gateway
    assert BUILTIN <= {m["model"] for m in direct}


@pytest.mark.parametrize("model", [CHAT_MODEL, THINKING_MODEL])
def test_chat(endpoints, model):
    direct, gateway = both(
        endpoints,
        lambda url: scrub(ollama_client(url).chat(model=model, messages=MESSAGES, options=DETERMINISTIC, stream=False)),
    )
    assert direct == gateway
    assert direct["model"] == model
    assert direct["done"] is True and direct["done_reason"] == "stop"
    assert direct["message"]["role"] == "assistant" and direct["message"]["content"]
    if model == THINKING_MODEL:
        assert direct["message"]["thinking"], "a thinking model thinks by default"


@pytest.mark.parametrize("model", [CHAT_MODEL, THINKING_MODEL])
def test_chat_stream(endpoints, model):
    direct, gateway = both(
        endpoints,
        lambda url: [
            scrub(part)
            for part in ollama_client(url).chat(model=model, messages=MESSAGES, options=DETERMINISTIC, stream=True)
        ],
    )
    # Chunk for chunk: same pieces, in the same order, same final chunk.
    assert direct == gateway
    # Many small chunks: any re-chunking or buffering bug shows up here.
    assert len(direct) > 50, "expected a real stream, not one object"
    assert all(not p["done"] for p in direct[:-1])
    assert direct[-1]["done"] is True and direct[-1]["done_reason"] == "stop"
    assert "".join(p["message"]["content"] for p in direct)


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city"],
        },
    },
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_chat_tool_call(endpoints, stream):
    def run(url):
        result = ollama_client(url).chat(
            model=CHAT_MODEL, messages=MESSAGES, tools=[WEATHER_TOOL], options=DETERMINISTIC, stream=stream
        )
        return [scrub(p) for p in result] if stream else [scrub(result)]

    direct, gateway = both(endpoints, run)
    assert direct == gateway
    calls = [c for p in direct for c in (p["message"]["tool_calls"] or [])]
    assert calls and calls[0]["function"]["name"] == "get_weather"
    assert isinstance(calls[0]["function"]["arguments"], dict)


def test_chat_structured_output(endpoints):
    schema = {"type": "object", "properties": {"colour": {"type": "string"}}, "required": ["colour"]}
    direct, gateway = both(
        endpoints,
        lambda url: scrub(
            ollama_client(url).chat(model=CHAT_MODEL, messages=MESSAGES, format=schema, options=DETERMINISTIC)
        ),
    )
    assert direct == gateway
    assert "colour" in json.loads(direct["message"]["content"])


def test_generate(endpoints):
    direct, gateway = both(
        endpoints,
        lambda url: scrub(ollama_client(url).generate(model=CHAT_MODEL, prompt=PROMPT, options=DETERMINISTIC, stream=False)),
    )
    assert direct == gateway
    assert direct["model"] == CHAT_MODEL
    assert direct["response"] and direct["done"] is True and direct["done_reason"] == "stop"


def test_generate_stream(endpoints):
    direct, gateway = both(
        endpoints,
        lambda url: [
            scrub(part)
            for part in ollama_client(url).generate(model=CHAT_MODEL, prompt=PROMPT, options=DETERMINISTIC, stream=True)
        ],
    )
    assert direct == gateway
    assert len(direct) > 50
    assert direct[-1]["done"] is True and direct[-1]["done_reason"] == "stop"
    assert "".join(p["response"] for p in direct)


def test_generate_length_limit(endpoints):
    options = {**DETERMINISTIC, "num_predict": 3}
    direct, gateway = both(
        endpoints,
        lambda url: scrub(ollama_client(url).generate(model=CHAT_MODEL, prompt=PROMPT, options=options, stream=False)),
    )
    assert direct == gateway
    assert direct["done_reason"] == "length"


def test_embed(endpoints):
    inputs = ["The sky is blue.", "Warmline keeps models warm."]
    direct, gateway = both(endpoints, lambda url: scrub(ollama_client(url).embed(model=EMBED_MODEL, input=inputs)))
    # Exact float equality: the gateway must not re-encode numbers.
    assert direct == gateway
    assert direct["model"] == EMBED_MODEL
    assert len(direct["embeddings"]) == 2 and all(direct["embeddings"])


def test_show(endpoints):
    direct, gateway = both(endpoints, lambda url: scrub(ollama_client(url).show(CHAT_MODEL)))
    assert direct == gateway
    assert "completion" in direct["capabilities"]
    assert direct["details"]["family"]


def test_ps(endpoints):
    # Load a model on both sides first, so the list is not trivially empty.
    both(endpoints, lambda url: ollama_client(url).generate(model=CHAT_MODEL, prompt="hi", options=DETERMINISTIC))
    direct, gateway = both(endpoints, running)
    assert direct == gateway
    assert CHAT_MODEL in {m["model"] for m in direct}


def test_pull_with_progress(endpoints):
    model = "tinyllama:latest"
    before, _ = both(endpoints, listed)
    assert model not in {m["model"] for m in before}

    direct, gateway = both(endpoints, lambda url: [scrub(p) for p in ollama_client(url).pull(model, stream=True)])
    assert direct[-1]["status"] == gateway[-1]["status"] == "success"
    # How many intermediate "pulling <digest>" updates a pull emits may
    # depend on timing, so compare the progress story, not each update.
    assert story(gateway) == story(direct)
    assert any(p["digest"] and p["total"] for p in direct), "expected per-layer progress"
    for p in direct + gateway:
        if p["total"] and p["completed"] is not None:
            assert 0 <= p["completed"] <= p["total"]

    direct_list, gateway_list = both(endpoints, listed)
    assert direct_list == gateway_list
    assert model in {m["model"] for m in direct_list}


def story(progress: list[dict]) -> list[tuple]:
    """Progress updates without `completed`, consecutive repeats collapsed."""
    keys = [(p["status"], p["digest"], p["total"]) for p in progress]
    return [k for k, _ in itertools.groupby(keys)]


def test_pull_without_stream_then_embed(endpoints):
    model = "all-minilm:latest"
    direct, gateway = both(endpoints, lambda url: scrub(ollama_client(url).pull(model, stream=False)))
    assert direct == gateway
    assert direct["status"] == "success"
    direct, gateway = both(endpoints, lambda url: scrub(ollama_client(url).embed(model=model, input="pulled")))
    assert direct == gateway
    assert direct["model"] == model and direct["embeddings"][0]


def test_copy(endpoints):
    copy = "compat-copy:latest"
    direct, gateway = both(endpoints, lambda url: ollama_client(url).copy(CHAT_MODEL, copy))
    assert direct.status == gateway.status == "success"

    direct_list, gateway_list = both(endpoints, listed)
    assert direct_list == gateway_list
    assert copy in {m["model"] for m in direct_list}

    direct, gateway = both(endpoints, lambda url: scrub(ollama_client(url).show(copy)))
    assert direct == gateway


def test_delete(endpoints):
    doomed = "compat-doomed:latest"
    both(endpoints, lambda url: ollama_client(url).copy(CHAT_MODEL, doomed))
    direct, gateway = both(endpoints, lambda url: ollama_client(url).delete(doomed))
    assert direct.status == gateway.status == "success"

    direct_list, gateway_list = both(endpoints, listed)
    assert direct_list == gateway_list
    assert doomed not in {m["model"] for m in direct_list}
    assert CHAT_MODEL in {m["model"] for m in direct_list}, "deleting a copy keeps the original"


# Each call names a model that does not exist. The message wording differs per
# route (quotes, tag normalisation); the gateway must pass each through as is.
UNKNOWN_MODEL_CALLS = {
    "chat": lambda c: c.chat(model=UNKNOWN, messages=MESSAGES, stream=False),
    "chat-stream": lambda c: list(c.chat(model=UNKNOWN, messages=MESSAGES, stream=True)),
    "generate": lambda c: c.generate(model=UNKNOWN, prompt=PROMPT, stream=False),
    "generate-stream": lambda c: list(c.generate(model=UNKNOWN, prompt=PROMPT, stream=True)),
    "embed": lambda c: c.embed(model=UNKNOWN, input="x"),
    "show": lambda c: c.show(UNKNOWN),
    "copy": lambda c: c.copy(UNKNOWN, "compat-never:latest"),
    "delete": lambda c: c.delete(UNKNOWN),
}


@pytest.mark.parametrize("call", UNKNOWN_MODEL_CALLS.values(), ids=UNKNOWN_MODEL_CALLS.keys())
def test_unknown_model_is_404(endpoints, call):
    direct, gateway = both(endpoints, lambda url: error_of(lambda: call(ollama_client(url)), ollama.ResponseError))
    assert (gateway.status_code, gateway.error) == (direct.status_code, direct.error)
    assert direct.status_code == 404
    assert "not found" in direct.error and "no-such-model" in direct.error
