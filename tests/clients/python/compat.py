"""Helpers to run one client call against both endpoints and compare results.

A comparison drops only fields that legitimately differ between two runs of the
same request (clock readings, durations, random ids); everything else—content,
model names, done_reason, embeddings, digests, sizes, ordering of stream
chunks—must be equal.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

import ollama
import openai

T = TypeVar("T")

# Clock readings and durations: differ between any two runs.
VOLATILE = frozenset(
    {
        "created_at",
        "modified_at",
        "expires_at",
        "total_duration",
        "load_duration",
        "prompt_eval_duration",
        "eval_duration",
    }
)
# OpenAI responses add random ids ("chatcmpl-<n>") and a unix `created`.
# Not used for models.list, where `id` is the model name.
OPENAI_VOLATILE = VOLATILE | {"id", "created"}

# Sampling that makes the simulator deterministic.
DETERMINISTIC = {"temperature": 0, "seed": 42}

CLIENT_TIMEOUT_S = 30.0


def scrub(value: Any, drop: frozenset[str] = VOLATILE) -> Any:
    """Plain JSON-like data with the `drop` keys removed at every depth."""
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if isinstance(value, dict):
        return {k: scrub(v, drop) for k, v in value.items() if k not in drop}
    if isinstance(value, (list, tuple)):
        return [scrub(v, drop) for v in value]
    return value


# One client per URL for the session, as an application would hold one: this
# also sends later requests over kept-alive connections through the gateway.
@functools.cache
def ollama_client(url: str) -> ollama.Client:
    return ollama.Client(host=url, timeout=CLIENT_TIMEOUT_S)


@functools.cache
def openai_client(url: str) -> openai.OpenAI:
    # Retries would hide a flaky gateway and slow failures down.
    return openai.OpenAI(base_url=f"{url}/v1", api_key="ollama", max_retries=0, timeout=CLIENT_TIMEOUT_S)


def both(endpoints, call: Callable[[str], T]) -> tuple[T, T]:
    """`call(url)` on the direct simulator, then through the gateway.

    Always in that order, so both simulators see the same history.
    """
    return call(endpoints.direct), call(endpoints.gateway)


def error_of(call: Callable[[], Any], exc_type: type[BaseException]) -> BaseException:
    """The exception of `exc_type` that `call` raises (fails the test otherwise)."""
    try:
        result = call()
    except exc_type as e:
        return e
    raise AssertionError(f"expected {exc_type.__name__}, got a result: {result!r}")
