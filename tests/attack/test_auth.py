"""The auth matrix (issue 14): every endpoint against every kind of caller, on a gateway with an
admin key (keys required). Only the callers listed may pass; every refusal is a 401/403 in the
client's format, and a refused call spends nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.attack.conftest import HardenedGateway
from tests.e2e.conftest import e2e_config

ADMIN = "auth-admin-key"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}
MESSAGES = {**CHAT, "model": "claude-haiku"}
CALLERS = ("none", "garbage", "revoked", "virtual", "virtual-x-api-key", "limited", "admin")
#: (method, path, body, callers that may pass)
ENDPOINTS: list[tuple[str, str, Any, set[str]]] = [
    ("POST", "/v1/chat/completions", CHAT, {"virtual", "virtual-x-api-key", "limited", "admin"}),
    ("POST", "/v1/messages", MESSAGES, {"virtual", "virtual-x-api-key", "admin"}),
    ("GET", "/v1/models", None, {"virtual", "virtual-x-api-key", "limited", "admin"}),
    ("GET", "/admin/keys", None, {"admin"}),
    ("GET", "/admin/budgets", None, {"admin"}),
    ("POST", "/admin/keys", {"name": "made-by-{caller}"}, {"admin"}),
    ("GET", "/metrics", None, {"admin"}),
    ("GET", "/ui/api/summary", None, {"admin"}),
]


@pytest.fixture(scope="module")
def secured(simulator: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    config = e2e_config(
        simulator, tmp_path_factory.mktemp("auth"), server={"admin_key_env": "AUTH_ADMIN"}
    )
    with HardenedGateway(config, env={"AUTH_ADMIN": ADMIN}) as gw:
        keys = gw.gateway.keys
        assert keys is not None
        _, virtual = keys.create("client")
        _, limited = keys.create("limited", allowed_models=["gpt-4o-mini"])
        gone, revoked = keys.create("gone")
        keys.revoke(gone.id)
        creds = {
            "none": {},
            "garbage": {"authorization": "Bearer mm-not-a-real-key"},
            "revoked": {"authorization": f"Bearer {revoked}"},
            "virtual": {"authorization": f"Bearer {virtual}"},
            "virtual-x-api-key": {"x-api-key": virtual},
            "limited": {"authorization": f"Bearer {limited}"},
            "admin": {"authorization": f"Bearer {ADMIN}"},
        }
        yield gw, creds


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS)
def test_auth_matrix(
    secured: Any, caller: str, method: str, path: str, body: Any, allowed: set[str]
) -> None:
    gw, creds = secured
    headers = {**creds[caller], "anthropic-version": "2023-06-01"}
    if isinstance(body, dict) and "name" in body:
        body = {"name": body["name"].format(caller=caller)}
    r = httpx.request(method, gw.url + path, json=body, headers=headers, timeout=30)
    if caller in allowed:
        assert r.status_code in (200, 201), (caller, path, r.text[:300])
        return
    assert r.status_code in (401, 403), (caller, path, r.status_code, r.text[:300])
    error = r.json()
    if path == "/v1/messages":
        assert error["type"] == "error" and error["error"]["type"] in (
            "authentication_error",
            "permission_error",
        )
    else:
        assert error["error"]["message"]


def test_refused_callers_are_recorded_without_spending(secured: Any) -> None:
    gw, creds = secured
    for caller in ("none", "garbage", "revoked"):
        r = httpx.post(gw.url + "/v1/chat/completions", json=CHAT, headers=creds[caller])
        assert r.status_code == 401
    gw.flush()
    rows = gw.gateway.ledger  # the refusals are rows with no attempts and no cost
    assert rows is not None
    import sqlite3

    conn = sqlite3.connect(gw.gateway.config.ledger_path)
    try:
        refused = conn.execute(
            "SELECT count(*), coalesce(sum(cost_usd != '0'), 0) FROM requests "
            "WHERE http_status = 401"
        ).fetchone()
        attempts = conn.execute(
            "SELECT count(*) FROM attempts a JOIN requests r ON a.request_id = r.id "
            "WHERE r.http_status = 401"
        ).fetchone()[0]
    finally:
        conn.close()
    assert refused[0] >= 3 and refused[1] == 0 and attempts == 0


def test_a_key_limited_to_some_models_is_refused_the_others(secured: Any) -> None:
    gw, creds = secured
    r = httpx.post(
        gw.url + "/v1/chat/completions",
        json={**CHAT, "model": "claude-haiku"},
        headers=creds["limited"],
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
