"""Bounded inputs (issue 14, findings 1, 4 and 6): what one request may make the gateway hold or
store, integers the upstream request could not encode, and browsers' cross-site calls in
keyless mode. Each refusal is a 4xx in the client's own API format."""

from __future__ import annotations

import contextlib
import socket
from typing import Any

import httpx
import orjson
import pytest

from tests.attack.conftest import HardenedGateway
from tests.e2e.conftest import e2e_config

CHAT = "/v1/chat/completions"
MSG = [{"role": "user", "content": "What is 2+2?"}]


def _raw(gw: Any, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send raw bytes; the status and body of the answer."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        # the server may answer and close before taking everything: read its answer anyway
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(head + body)
        data = b""
        while True:
            try:
                part = s.recv(65536)
            except ConnectionResetError:
                break
            if not part:
                break
            data += part
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("path", [CHAT, "/v1/messages"])
def test_an_oversized_request_head_gets_431_in_the_clients_format(
    sim_gateway: Any, path: str
) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 5})
    big = b"x-filler: " + b"a" * (1 << 20) + b"\r\n"  # 1 MiB of header (64 MB got 200 before)
    head = (
        (
            f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nanthropic-version: 2023-06-01\r\n"
        ).encode()
        + big
        + b"\r\n"
    )
    status, answer = _raw(sim_gateway, head, body)
    assert status == 431
    error = orjson.loads(answer)
    if path == CHAT:
        assert error["error"]["code"] == "request_header_fields_too_large"
    else:
        assert error["type"] == "error" and error["error"]["type"] == "request_too_large"


def test_a_normal_request_head_is_served(sim_gateway: Any) -> None:
    r = httpx.post(
        sim_gateway.url + CHAT,
        json={"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 5},
        headers={"x-filler": "a" * 8000},
    )
    assert r.status_code == 200


def _chat(gw: Any, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(gw.url + CHAT, json=body, headers=headers, timeout=30)


def test_tag_headers_are_bounded_in_length_and_number(sim_gateway: Any) -> None:
    ok = {"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 5}
    r = _chat(sim_gateway, ok, **{"x-modelmix-tag-project": "a" * 4000})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "metadata.project"
    many = {f"x-modelmix-tag-t{i}": "v" for i in range(40)}
    r = _chat(sim_gateway, ok, **many)
    assert r.status_code == 400 and r.json()["error"]["code"] == "too_many_tags"
    r = _chat(sim_gateway, ok, **{"x-modelmix-tag-project": "atlas"})
    assert r.status_code == 200


def test_the_user_field_is_bounded(sim_gateway: Any) -> None:
    body = {"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 5, "user": "u" * 100_000}
    r = _chat(sim_gateway, body)
    assert r.status_code == 400 and r.json()["error"]["param"] == "user"
    anthropic = {
        "model": "claude-haiku",
        "max_tokens": 5,
        "messages": MSG,
        "metadata": {"user_id": "u" * 100_000},
    }
    r = httpx.post(
        sim_gateway.url + "/v1/messages",
        json=anthropic,
        headers={"anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 400 and r.json()["type"] == "error"


@pytest.mark.parametrize("param", ["seed", "top_k", "max_tokens"])
@pytest.mark.parametrize("value", [2**64, 2**64 + 1, 10**30, -(2**64)])
def test_integers_beyond_64_bits_are_a_400_not_a_500(
    sim_gateway: Any, param: str, value: int
) -> None:
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], '
    body += b'"%s": %d}' % (param.encode(), value)
    r = httpx.post(
        sim_gateway.url + CHAT, content=body, headers={"content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_anthropic_top_k_beyond_64_bits_is_a_400(sim_gateway: Any) -> None:
    body = b'{"model": "claude-haiku", "max_tokens": 5, "top_k": %d, ' % (2**64)
    body += b'"messages": [{"role": "user", "content": "hi"}]}'
    r = httpx.post(
        sim_gateway.url + "/v1/messages",
        content=body,
        headers={"content-type": "application/json", "anthropic-version": "2023-06-01"},
    )
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"


# -- keyless mode: a web page must not spend the gateway's provider keys ------------------------

BODY = orjson.dumps({"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 5})


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_keyless_mode_refuses_what_a_browser_sends_cross_site(
    sim_gateway: Any, content_type: str | None
) -> None:
    headers = {"origin": "https://evil.example"}
    if content_type:
        headers["content-type"] = content_type
    r = httpx.post(sim_gateway.url + CHAT, content=BODY, headers=headers)
    assert r.status_code in (400, 403)
    assert "error" in r.json()


def test_keyless_mode_refuses_a_foreign_origin_even_with_json(sim_gateway: Any) -> None:
    r = httpx.post(
        sim_gateway.url + CHAT,
        content=BODY,
        headers={"content-type": "application/json", "origin": "https://evil.example"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"
    same = {"content-type": "application/json", "origin": sim_gateway.url}
    assert httpx.post(sim_gateway.url + CHAT, content=BODY, headers=same).status_code == 200


def test_configured_origins_may_call(simulator: Any, tmp_path: Any) -> None:
    config = e2e_config(simulator, tmp_path, server={"allowed_origins": ["https://app.example"]})
    with HardenedGateway(config) as gw:
        ok = {"content-type": "application/json", "origin": "https://app.example"}
        assert httpx.post(gw.url + CHAT, content=BODY, headers=ok).status_code == 200
        bad = {"content-type": "application/json", "origin": "https://other.example"}
        assert httpx.post(gw.url + CHAT, content=BODY, headers=bad).status_code == 403


def _ledger_bytes(gw: Any) -> int:
    gw.flush()
    path = gw.gateway.config.ledger_path
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*") if p.is_file())


def test_the_ledger_grows_by_a_bounded_amount_per_request(sim_gateway: Any) -> None:
    """Before: one 16 MB tag header added 39 MB of ledger and 20 requests with a 4 MB user
    field 100 MB. Now the largest request the limits allow, and every refused one, adds a
    bounded amount."""
    before = _ledger_bytes(sim_gateway)
    tags = {f"x-modelmix-tag-t{i}": "v" * 500 for i in range(30)}  # within every limit
    body = {"model": "gpt-4o-mini", "messages": MSG, "max_tokens": 5, "user": "u" * 256}
    for _ in range(10):
        assert _chat(sim_gateway, body, **tags).status_code == 200
    huge = {**body, "user": "u" * 4_000_000}
    for _ in range(10):
        assert _chat(sim_gateway, huge, **{"x-modelmix-tag-big": "b" * 60_000}).status_code in (
            400,
            431,
        )
    grown = _ledger_bytes(sim_gateway) - before
    assert grown < 20 * 100_000, f"the ledger grew {grown} bytes for 20 requests"
