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

from modelmix.keys import KeyStore
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
