"""The admin API, through the real app (``create_app``) of a started gateway."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from tests.helpers import make_config, sim_model

from modelmix.gateway import Gateway
from modelmix.ledger.keys import KeyStore
from modelmix.server.app import create_app

ADMIN = "mm-admin-secret-0123456789"


@contextmanager
def _started(tmp_path: Path, admin: str | None = ADMIN) -> Iterator[tuple[TestClient, KeyStore]]:
    config = make_config(
        [sim_model("sim-small")],
        ledger={"path": str(tmp_path / "ledger.db"), "flush_interval": 0.05},
        server={"admin_key_env": "MM_ADMIN"},
        budgets={"teams": {"search": [{"kind": "soft", "period": "day", "limit_usd": 10}]}},
    )
    gateway = Gateway(config, env={"MM_ADMIN": admin} if admin else {})
    with TestClient(create_app(gateway)) as client:
        assert gateway.keys is not None
        yield client, gateway.keys


def _h(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _openai_error(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["message"] and "type" in err


def test_admin_key_is_required(tmp_path: Path) -> None:
    with _started(tmp_path) as (client, store):
        _admin_key_is_required(client, store)


def _admin_key_is_required(client: TestClient, store: KeyStore) -> None:
    _, virtual = store.create("user")
    _openai_error(client.get("/admin/keys"), 401, "missing_api_key")
    _openai_error(client.get("/admin/keys", headers=_h("mm-wrong")), 401, "invalid_api_key")
    _openai_error(client.get("/admin/keys", headers=_h(virtual)), 403, "admin_key_required")
    _openai_error(
        client.post("/admin/keys", json={"name": "x"}, headers={"x-api-key": virtual}),
        403,
        "admin_key_required",
    )
    assert client.get("/admin/keys", headers={"x-api-key": ADMIN}).status_code == 200
    assert store.get("x") is None


def test_no_admin_key_configured_means_the_admin_api_is_off(tmp_path: Path) -> None:
    with _started(tmp_path, admin=None) as (client, _):
        _openai_error(client.get("/admin/keys", headers=_h(ADMIN)), 403, "admin_disabled")


def test_key_lifecycle_over_the_admin_api(tmp_path: Path) -> None:
    with _started(tmp_path) as (client, store):
        _key_lifecycle(client, store)


def _key_lifecycle(client: TestClient, store: KeyStore) -> None:
    h = _h(ADMIN)
    body = {
        "name": "svc",
        "owner": "ana",
        "team": "search",
        "tags": ["prod"],
        "allowed_models": ["cheap"],
        "budgets": [{"kind": "paced", "period": "month", "limit_usd": "30"}],
        "rate_limits": {"rpm": 10},
    }
    created = client.post("/admin/keys", json=body, headers=h)
    assert created.status_code == 201, created.text
    data = created.json()
    key, key_id = data["key"], data["id"]
    assert data["team"] == "search" and data["budgets"][0]["kind"] == "paced"
    assert data["rate_limits"] == {"rpm": 10}
    assert store.verify(key) is not None
    listed = client.get("/admin/keys", headers=h).json()["data"]
    assert [k["id"] for k in listed] == [key_id] and "key" not in listed[0]
    assert client.get(f"/admin/keys/{key_id}", headers=h).json()["name"] == "svc"
    _openai_error(client.get("/admin/keys/nope", headers=h), 404, "key_not_found")

    patched = client.patch(f"/admin/keys/{key_id}", json={"team": "ads", "tags": []}, headers=h)
    assert patched.status_code == 200 and patched.json()["team"] == "ads"
    assert patched.json()["tags"] == [] and patched.json()["owner"] == "ana"

    rotated = client.post(f"/admin/keys/{key_id}/rotate", headers=h).json()
    assert rotated["id"] == key_id and rotated["key"] != key
    assert store.verify(key) is None  # the old secret stops working
    assert store.verify(rotated["key"]) is not None

    assert client.delete(f"/admin/keys/{key_id}", headers=h).json()["revoked"] is True
    assert store.verify(rotated["key"]) is None
    _openai_error(client.post(f"/admin/keys/{key_id}/revoke", headers=h), 404, "key_not_found")
    active = client.get("/admin/keys?include_revoked=false", headers=h).json()["data"]
    assert active == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "x", "budgets": [{"limit_usd": "-1"}]},
        {"name": "x", "budgets": {"limit_usd": 1}},
        {"name": "x", "rate_limits": {"rpm": -5}},
        {"name": "x", "colour": "red"},
        {"name": 5},
    ],
)
def test_bad_create_requests_are_400(tmp_path: Path, body: dict[str, Any]) -> None:
    with _started(tmp_path) as (client, store):
        resp = client.post("/admin/keys", json=body, headers=_h(ADMIN))
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["type"] == "invalid_request_error"
        assert store.list() == []


def test_duplicate_name_and_bad_json(tmp_path: Path) -> None:
    with _started(tmp_path) as (client, _):
        h = _h(ADMIN)
        assert client.post("/admin/keys", json={"name": "a"}, headers=h).status_code == 201
        assert client.post("/admin/keys", json={"name": "a"}, headers=h).status_code == 400
        resp = client.post("/admin/keys", content=b"{nope", headers=h)
        assert resp.status_code == 400


def test_budget_status_shows_real_spend(tmp_path: Path) -> None:
    """A key made over the admin API spends through the chat API; /admin/budgets shows it."""
    with _started(tmp_path) as (client, _):
        h = _h(ADMIN)
        made = client.post(
            "/admin/keys",
            json={
                "name": "svc",
                "team": "search",
                "budgets": [{"kind": "hard", "period": "day", "limit_usd": "2"}],
            },
            headers=h,
        ).json()
        chat = client.post(
            "/v1/chat/completions",
            json={"model": "sim-small", "messages": [{"role": "user", "content": "hi"}]},
            headers=_h(made["key"]),
        )
        assert chat.status_code == 200, chat.text
        cost = Decimal(chat.headers["x-modelmix-cost-usd"])
        assert cost > 0
        data = client.get("/admin/budgets", headers=h).json()["data"]
        by_scope = {d["scope"]: d for d in data}
        assert Decimal(by_scope["team"]["spent_usd"]) == cost
        assert by_scope["team"]["limit_usd"] == "10" and by_scope["team"]["kind"] == "soft"
        assert Decimal(by_scope["team"]["remaining_usd"]) == Decimal(10) - cost
        key = by_scope["key"]
        assert key["subject"] == made["id"] and key["limit_usd"] == "2"
        assert Decimal(key["spent_usd"]) == cost and Decimal(key["reserved_usd"]) == 0
        _openai_error(client.get("/admin/budgets"), 401, "missing_api_key")
