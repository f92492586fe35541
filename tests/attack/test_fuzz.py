"""A property-based fuzzer over every endpoint (issue 14): bodies from valid-looking to hostile,
under a real gateway with an admin key. The properties: no response is a 5xx (the models used
answer whenever the request is valid), and every error is in the client's own format (OpenAI's
``{"error": {...}}``, Anthropic's ``{"type": "error", ...}`` on ``/v1/messages``). Example counts
are bounded so the whole fuzzer runs in well under a minute on 2 cores."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.attack.conftest import HardenedGateway
from tests.e2e.conftest import e2e_config

ADMIN = "fuzz-admin-key"
SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
content = st.text(max_size=40) | st.lists(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image_url", "bogus"])}, optional={"text": values}
    ),
    max_size=2,
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "developer", "robot"])},
    optional={"content": content | values, "name": values, "tool_call_id": values},
)
OPTIONAL = {
    k: values | st.integers(min_value=-(2**66), max_value=2**66)
    for k in (
        "max_tokens",
        "seed",
        "top_k",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "response_format",
        "metadata",
        "user",
        "system",
        "n",
        "logprobs",
        "stream_options",
        "unknown_field",
    )
}
chat_body = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["gpt-4o-mini", "claude-haiku", "gemini-flash", "auto"]) | values,
        "messages": st.lists(message, max_size=3) | values,
    },
    optional={**OPTIONAL, "stream": st.booleans() | values},
)
raw_bodies = st.binary(max_size=64) | st.just(b"") | st.just(b"[]") | st.just(b"null")


def _openai_error(r: httpx.Response) -> None:
    body = r.json()
    assert isinstance(body["error"]["message"], str) and body["error"]["type"], r.text


def _anthropic_error(r: httpx.Response) -> None:
    body = r.json()
    assert body["type"] == "error" and isinstance(body["error"]["message"], str), r.text


@pytest.fixture(scope="module")
def fuzz_gateway(simulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    config = e2e_config(simulator, tmp, server={"admin_key_env": "FUZZ_ADMIN"})
    with (
        HardenedGateway(config, env={"FUZZ_ADMIN": ADMIN}) as gw,
        httpx.Client(
            base_url=gw.url, headers={"authorization": f"Bearer {ADMIN}"}, timeout=30
        ) as client,
    ):
        yield client


def _check(r: httpx.Response, anthropic: bool = False) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code >= 400:
        (_anthropic_error if anthropic else _openai_error)(r)


def _post(client: httpx.Client, path: str, body: Any, **headers: str) -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()  # ints > 64 bits too
    h = {"content-type": "application/json", **headers}
    with client.stream("POST", path, content=data, headers=h) as r:
        r.read()
    return r


@SETTINGS
@given(body=chat_body | values)
def test_fuzz_chat_completions(fuzz_gateway: httpx.Client, body: Any) -> None:
    _check(_post(fuzz_gateway, "/v1/chat/completions", body))


@SETTINGS
@given(body=chat_body | values)
def test_fuzz_messages(fuzz_gateway: httpx.Client, body: Any) -> None:
    if isinstance(body, dict) and "max_tokens" not in body:
        body["max_tokens"] = 16
    r = _post(fuzz_gateway, "/v1/messages", body, **{"anthropic-version": "2023-06-01"})
    _check(r, anthropic=True)


@SETTINGS
@given(
    body=raw_bodies, path=st.sampled_from(["/v1/chat/completions", "/v1/messages", "/v1/feedback"])
)
def test_fuzz_raw_bodies(fuzz_gateway: httpx.Client, body: bytes, path: str) -> None:
    _check(_post(fuzz_gateway, path, body), anthropic=path == "/v1/messages")


@SETTINGS
@given(
    body=st.fixed_dictionaries(
        {}, optional={k: values for k in ("request_id", "score", "label", "comment", "extra")}
    )
    | values
)
def test_fuzz_feedback(fuzz_gateway: httpx.Client, body: Any) -> None:
    _check(_post(fuzz_gateway, "/v1/feedback", body))


admin_body = (
    st.fixed_dictionaries(
        {},
        optional={
            k: values
            for k in (
                "name",
                "owner",
                "team",
                "tags",
                "allowed_models",
                "allowed_tags",
                "budgets",
                "rate_limits",
                "bogus",
            )
        },
    )
    | values
)


@SETTINGS
@given(
    body=admin_body,
    method=st.sampled_from(["POST", "PATCH"]),
    ident=st.text(min_size=1, max_size=12).filter(
        lambda s: "/" not in s and "?" not in s and "#" not in s
    ),
)
def test_fuzz_admin_api(fuzz_gateway: httpx.Client, body: Any, method: str, ident: str) -> None:
    path = "/admin/keys" if method == "POST" else f"/admin/keys/{quote(ident, safe='')}"
    data = json.dumps(body).encode()
    r = fuzz_gateway.request(
        method, path, content=data, headers={"content-type": "application/json"}
    )
    _check(r)


@SETTINGS
@given(
    path=st.sampled_from(["/v1/models/", "/models/", "/admin/keys/", "/ui/api/summary?", "/nope/"]),
    tail=st.text(max_size=16),
)
def test_fuzz_get_paths(fuzz_gateway: httpx.Client, path: str, tail: str) -> None:
    _check(fuzz_gateway.get(path + quote(tail, safe="=&")))
