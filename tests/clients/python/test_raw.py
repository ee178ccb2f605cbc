"""Byte-for-byte: for idempotent reads, warmline's answer is its upstream's.

The client tests above compare two simulators through parsed client objects;
here one simulator is read twice, once through warmline, so nothing at all may
differ: status, content type and every body byte (timestamps included).
"""

from __future__ import annotations

import httpx
import pytest

READS = {
    "root": ("GET", "/", None),
    "version": ("GET", "/api/version", None),
    "tags": ("GET", "/api/tags", None),
    "show": ("POST", "/api/show", {"model": "llama3.2:latest"}),
    "show-unknown": ("POST", "/api/show", {"model": "no-such-model"}),
    "v1-models": ("GET", "/v1/models", None),
    "unknown-path": ("GET", "/api/no-such-route", None),
}


@pytest.mark.parametrize("method,path,body", READS.values(), ids=READS.keys())
def test_read_is_byte_identical(endpoints, method, path, body):
    with httpx.Client(timeout=30) as http:
        upstream = http.request(method, endpoints.upstream + path, json=body)
        gateway = http.request(method, endpoints.gateway + path, json=body)
    assert (gateway.status_code, gateway.headers.get("content-type"), gateway.content) == (
        upstream.status_code,
        upstream.headers.get("content-type"),
        upstream.content,
    )


def test_gateway_forwards_each_request_exactly_once(endpoints):
    # Guards the whole suite against a vacuous pass (e.g. both URLs reaching
    # the same simulator): the upstream simulator must count the gateway's call,
    # once (no silent retry, no duplicate).
    assert len({endpoints.direct, endpoints.gateway, endpoints.upstream}) == 3
    with httpx.Client(timeout=30) as http:
        counted = lambda: http.get(endpoints.upstream + "/_sim/counters").json()["requests"].get("/api/chat", 0)
        before = counted()
        reply = http.post(
            endpoints.gateway + "/api/chat",
            json={"model": "llama3.2:latest", "messages": [{"role": "user", "content": "hi"}], "stream": False},
        )
        assert reply.status_code == 200
        assert counted() == before + 1
