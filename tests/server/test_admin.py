from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from modelmix.budgets import BudgetContext, Budgets, BudgetSpec
from modelmix.keys import KeyStore
from modelmix.server.admin import admin_routes
from modelmix.server.auth import Authenticator

ADMIN = "mm-admin-secret-0123456789"


def _app(tmp_path: Path, admin: str | None = ADMIN) -> tuple[TestClient, KeyStore, Budgets]:
    store = KeyStore(tmp_path / "ledger.db")
    budgets = Budgets([BudgetSpec("team", "search", Decimal("10"), "soft", "day")])
    auth = Authenticator(admin, store, None)
    app = Starlette(routes=admin_routes(store, auth, budgets, admin_enabled=admin is not None))
    return TestClient(app), store, budgets


def _h(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def _openai_error(resp: Any, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert err["code"] == code and err["message"] and "type" in err


def test_admin_key_is_required(tmp_path: Path) -> None:
    client, store, _ = _app(tmp_path)
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
    client, _, _ = _app(tmp_path, admin=None)
    _openai_error(client.get("/admin/keys", headers=_h(ADMIN)), 403, "admin_disabled")


def test_key_lifecycle_over_the_admin_api(tmp_path: Path) -> None:
    client, store, _ = _app(tmp_path)
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
    client, store, _ = _app(tmp_path)
    resp = client.post("/admin/keys", json=body, headers=_h(ADMIN))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["type"] == "invalid_request_error"
    assert store.list() == []


def test_duplicate_name_and_bad_json(tmp_path: Path) -> None:
    client, _, _ = _app(tmp_path)
    h = _h(ADMIN)
    assert client.post("/admin/keys", json={"name": "a"}, headers=h).status_code == 201
    assert client.post("/admin/keys", json={"name": "a"}, headers=h).status_code == 400
    resp = client.post("/admin/keys", content=b"{nope", headers=h)
    assert resp.status_code == 400


def test_budget_status(tmp_path: Path) -> None:
    client, store, budgets = _app(tmp_path)
    store.create("svc", budgets=[{"kind": "hard", "period": "day", "limit_usd": "2"}])
    budgets.check_and_reserve(BudgetContext(team="search"), Decimal("1.25")).settle(Decimal("1.5"))
    data = client.get("/admin/budgets", headers=_h(ADMIN)).json()["data"]
    by_scope = {d["scope"]: d for d in data}
    assert by_scope["team"]["spent_usd"] == "1.5" and by_scope["team"]["limit_usd"] == "10"
    assert Decimal(by_scope["team"]["remaining_usd"]) == Decimal("8.5")
    assert by_scope["key"]["limit_usd"] == "2" and by_scope["key"]["spent_usd"] == "0"
    _openai_error(client.get("/admin/budgets"), 401, "missing_api_key")
