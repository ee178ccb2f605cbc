"""The official `openai` Python client, pointed at the `/v1` compatibility
routes, sees the same results through warmline as directly."""

from __future__ import annotations

import json

import openai
import pytest

from compat import OPENAI_VOLATILE, both, error_of, openai_client, scrub

CHAT_MODEL = "llama3.2:latest"
EMBED_MODEL = "nomic-embed-text:latest"
MESSAGES = [{"role": "user", "content": "Name three colours of the sky."}]
# /v1 takes sampling parameters at top level, not in `options`.
DETERMINISTIC = {"temperature": 0, "seed": 42}


def oscrub(value):
    return scrub(value, OPENAI_VOLATILE)


def test_chat_completion(endpoints):
    direct, gateway = both(
        endpoints,
        lambda url: oscrub(openai_client(url).chat.completions.create(model=CHAT_MODEL, messages=MESSAGES, **DETERMINISTIC)),
    )
    assert direct == gateway
    assert direct["object"] == "chat.completion" and direct["model"] == CHAT_MODEL
    (choice,) = direct["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    assert direct["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("include_usage", [False, True], ids=["plain", "include-usage"])
def test_chat_completion_stream(endpoints, include_usage):
    extra = {"stream_options": {"include_usage": True}} if include_usage else {}

    def run(url):
        stream = openai_client(url).chat.completions.create(
            model=CHAT_MODEL, messages=MESSAGES, stream=True, **DETERMINISTIC, **extra
        )
        return [oscrub(chunk) for chunk in stream]

    direct, gateway = both(endpoints, run)
    assert direct == gateway
    content = [c for c in direct if c["choices"]]
    assert content[0]["choices"][0]["delta"]["role"] == "assistant"
    assert "".join(c["choices"][0]["delta"]["content"] or "" for c in content)
    assert content[-1]["choices"][0]["finish_reason"] == "stop"
    usage = [c["usage"] for c in direct if c["usage"]]
    assert bool(usage) == include_usage


def test_chat_completion_tool_call(endpoints):
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }

    def run(url):
        reply = openai_client(url).chat.completions.create(
            model=CHAT_MODEL, messages=MESSAGES, tools=[tool], **DETERMINISTIC
        )
        assert all(c.id for c in reply.choices[0].message.tool_calls or [])
        return oscrub(reply)  # without the ids: random per call, as in Ollama

    direct, gateway = both(endpoints, run)
    assert direct == gateway
    (choice,) = direct["choices"]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["function"]["name"] == "get_weather"
    assert "city" in json.loads(call["function"]["arguments"])


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_completion(endpoints, stream):
    def run(url):
        result = openai_client(url).completions.create(
            model=CHAT_MODEL, prompt="Once upon a time", max_tokens=40, stream=stream, **DETERMINISTIC
        )
        return [oscrub(chunk) for chunk in result] if stream else oscrub(result)

    direct, gateway = both(endpoints, run)
    assert direct == gateway
    chunks = direct if stream else [direct]
    assert all(c["object"] == "text_completion" and c["model"] == CHAT_MODEL for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
    assert chunks[-1]["choices"][0]["finish_reason"] in {"stop", "length"}


# The client asks for base64 unless told otherwise and decodes it itself.
@pytest.mark.parametrize("encoding", [None, "float"], ids=["client-default", "float"])
def test_embeddings(endpoints, encoding):
    extra = {"encoding_format": encoding} if encoding else {}
    inputs = ["first text", "second text"]
    direct, gateway = both(
        endpoints, lambda url: oscrub(openai_client(url).embeddings.create(model=EMBED_MODEL, input=inputs, **extra))
    )
    assert direct == gateway
    assert direct["model"] == EMBED_MODEL
    assert [d["index"] for d in direct["data"]] == [0, 1]
    assert all(d["embedding"] for d in direct["data"])


def test_models_list(endpoints):
    def run(url):
        # `created` is the model's modification time: different per simulator.
        models = [m.model_dump() for m in openai_client(url).models.list()]
        return sorted((m["id"], m["object"], m["owned_by"]) for m in models)

    direct, gateway = both(endpoints, run)
    assert direct == gateway
    assert (CHAT_MODEL, "model", "library") in direct


UNKNOWN = "no-such-model"
UNKNOWN_MODEL_CALLS = {
    "chat": lambda c: c.chat.completions.create(model=UNKNOWN, messages=MESSAGES),
    "chat-stream": lambda c: list(c.chat.completions.create(model=UNKNOWN, messages=MESSAGES, stream=True)),
    "completion": lambda c: c.completions.create(model=UNKNOWN, prompt="hi"),
    "embeddings": lambda c: c.embeddings.create(model=UNKNOWN, input="hi"),
    "models-retrieve": lambda c: c.models.retrieve(UNKNOWN),
}


@pytest.mark.parametrize("call", UNKNOWN_MODEL_CALLS.values(), ids=UNKNOWN_MODEL_CALLS.keys())
def test_unknown_model_is_not_found(endpoints, call):
    direct, gateway = both(endpoints, lambda url: error_of(lambda: call(openai_client(url)), openai.NotFoundError))
    assert (gateway.status_code, gateway.body, gateway.message) == (direct.status_code, direct.body, direct.message)
    assert direct.status_code == 404
    assert direct.body["type"] == "not_found_error"
    assert UNKNOWN in direct.body["message"]
