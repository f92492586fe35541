"""Bad input and bad keys get clear errors in the client's own format, never a 500."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from modelmix.ledger.keys import KeyStore
from modelmix.simulated import Simulator
from tests.e2e.conftest import RunningGateway, e2e_config


def post(
    url: str, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"content-type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        (CHAT, b"{not json", 400, "not valid JSON"),
        (CHAT, b"", 400, "empty"),
        (CHAT, b"[1, 2]", 400, "object"),
        (CHAT, b'{"model": "gpt-4o-mini"}', 400, "messages"),
        (CHAT, b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', 400, "model"),
        (
            CHAT,
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}],'
            b' "temperature": "hot"}',
            400,
            "temperature",
        ),
        (CHAT, b'{"model": "nope", "messages": [{"role": "user", "content": "x"}]}', 404, "nope"),
        (MESSAGES, b"{not json", 400, "not valid JSON"),
        (
            MESSAGES,
            b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]}',
            400,
            "max_tokens",
        ),
    ],
)
def test_bad_input(
    gateway: RunningGateway, path: str, body: bytes, status: int, needle: str
) -> None:
    code, data = post(gateway.url + path, body)
    assert code == status
    if path == CHAT:
        assert needle in data["error"]["message"]
        assert set(data["error"]) >= {"message", "type", "param", "code"}
    else:
        assert data["type"] == "error" and needle in data["error"]["message"]


def test_oversized_body_is_413(gateway: RunningGateway) -> None:
    limit = gateway.gateway.config.server.max_body_bytes
    big = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (limit + 10)}]}
    ).encode()
    code, data = post(gateway.url + CHAT, big)
    assert code == 413 and "limit" in data["error"]["message"]
    code, data = post(gateway.url + MESSAGES, big)
    assert code == 413 and data["error"]["type"] == "request_too_large"


def test_unknown_path_is_json_404(gateway: RunningGateway) -> None:
    code, data = post(gateway.url + "/v1/nothing", b"{}")
    assert code == 404 and "error" in data


def test_rejected_requests_are_in_the_ledger(gateway: RunningGateway) -> None:
    code, _ = post(gateway.url + CHAT, b"{broken")
    assert code == 400
    gateway.flush()
    from modelmix.ledger.queries import recent_requests

    rows = recent_requests(gateway.gateway.config.ledger_path, limit=50)
    assert any(r["http_status"] == 400 and "not valid JSON" in (r["error"] or "") for r in rows)


@pytest.fixture(scope="module")
def keyed_gateway(
    simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, str]]:
    tmp: Path = tmp_path_factory.mktemp("keyed")
    config = e2e_config(simulator, tmp, server={"admin_key_env": "MM_ADMIN"})
    _, virtual_key = KeyStore(config.ledger_path).create("team-a")
    running = RunningGateway(config, env={"MM_ADMIN": "admin-secret-123"})
    yield running, virtual_key
    running.stop()


def test_keys_required_once_configured(keyed_gateway: tuple[RunningGateway, str]) -> None:
    gw, virtual_key = keyed_gateway
    messages = [{"role": "user", "content": "What is 2+2?"}]
    with pytest.raises(openai.AuthenticationError) as bad:
        openai.OpenAI(
            base_url=gw.url + "/v1", api_key="wrong", max_retries=0
        ).chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert bad.value.status_code == 401
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gw.url, api_key="wrong", max_retries=0).messages.create(
            model="gpt-4o-mini", max_tokens=20, messages=messages
        )
    code, data = post(
        gw.url + CHAT, json.dumps({"model": "gpt-4o-mini", "messages": messages}).encode()
    )
    assert code == 401 and "Missing API key" in data["error"]["message"]

    for key in (virtual_key, "admin-secret-123"):
        raw = openai.OpenAI(
            base_url=gw.url + "/v1", api_key=key, max_retries=0
        ).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
        assert raw.status_code == 200

    gw.flush()
    db = gw.gateway.config.ledger_path
    raw_bytes = (
        db.read_bytes() + Path(str(db) + "-wal").read_bytes()
        if Path(str(db) + "-wal").exists()
        else db.read_bytes()
    )
    assert virtual_key.encode() not in raw_bytes
    assert b"admin-secret-123" not in raw_bytes


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_wrong_method_is_a_405_in_the_clients_format(gateway: RunningGateway) -> None:
    code, headers, body = get(gateway.url + CHAT)
    assert code == 405 and headers["allow"] == "POST"
    error = json.loads(body)["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "method_not_allowed"
    code, headers, body = get(gateway.url + MESSAGES, {"anthropic-version": "2023-06-01"})
    assert code == 405 and headers["allow"] == "POST"
    data = json.loads(body)
    assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error"
    code, _ = post(gateway.url + "/v1/models", b"{}")
    assert code == 405


def test_model_with_its_key_unset_is_a_503_not_a_400(gateway: RunningGateway) -> None:
    messages = [{"role": "user", "content": "hi"}]
    oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    for model in ("keyless", "nothing-callable"):
        with pytest.raises(openai.InternalServerError) as info:
            oa.chat.completions.create(model=model, messages=messages)  # type: ignore[arg-type]
        assert info.value.status_code == 503
        assert info.value.code == "model_unavailable"
        assert "keyless: unavailable: environment variable MM_UNSET_KEY is not set" in str(
            info.value
        )
    an = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
    with pytest.raises(anthropic.InternalServerError) as err:
        an.messages.create(model="keyless", max_tokens=10, messages=messages)  # type: ignore[arg-type]
    assert err.value.status_code == 503 and "MM_UNSET_KEY" in str(err.value)


def test_models_retrieve_with_both_sdks(gateway: RunningGateway) -> None:
    oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    got = oa.models.retrieve("gpt-4o-mini")
    assert (got.id, got.object, got.owned_by) == ("gpt-4o-mini", "model", "openai")
    assert oa.models.retrieve("auto").owned_by == "route"
    with pytest.raises(openai.NotFoundError) as info:
        oa.models.retrieve("nope")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        oa.models.retrieve("keyless")  # not listed, so not there either
    an = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
    claude = an.models.retrieve("claude-haiku")
    assert (claude.id, claude.type) == ("claude-haiku", "model")
    with pytest.raises(anthropic.NotFoundError):
        an.models.retrieve("nope")


def test_request_id_headers_for_both_sdks(gateway: RunningGateway) -> None:
    messages = [{"role": "user", "content": "What is 2+2?"}]
    oa = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    raw = oa.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    ours = raw.headers["x-modelmix-request-id"]
    assert raw.parse()._request_id == ours
    stream = oa.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
    )
    assert stream.headers["x-request-id"] == stream.headers["x-modelmix-request-id"]
    with pytest.raises(openai.NotFoundError) as info:
        oa.chat.completions.create(model="nope", messages=messages)  # type: ignore[arg-type]
    assert info.value.request_id == info.value.response.headers["x-modelmix-request-id"]

    an = anthropic.Anthropic(base_url=gateway.url, api_key="x", max_retries=0)
    raw_msg = an.messages.with_raw_response.create(
        model="gemini-flash",
        max_tokens=20,
        messages=messages,  # type: ignore[arg-type]
    )
    assert raw_msg.parse()._request_id == raw_msg.headers["x-modelmix-request-id"]
    assert "x-request-id" not in raw_msg.headers  # each API its own header
    with pytest.raises(anthropic.NotFoundError) as err:
        an.messages.create(model="nope", max_tokens=5, messages=messages)  # type: ignore[arg-type]
    assert err.value.request_id == err.value.response.headers["x-modelmix-request-id"]


def test_metrics_need_the_admin_key_once_one_is_set(
    gateway: RunningGateway, keyed_gateway: tuple[RunningGateway, str]
) -> None:
    code, _, body = get(gateway.url + "/metrics")
    assert code == 200 and b"modelmix_requests_total" in body  # no admin key: open
    keyed, virtual_key = keyed_gateway
    assert get(keyed.url + "/metrics")[0] == 401
    assert get(keyed.url + "/metrics", {"authorization": f"Bearer {virtual_key}"})[0] == 401
    code, _, body = get(keyed.url + "/metrics", {"authorization": "Bearer admin-secret-123"})
    assert code == 200 and b"modelmix_requests_total" in body
