"""The dashboard routes through starlette's TestClient: access control and the JSON's numbers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from modelmix.dashboard import dashboard_routes
from modelmix.dashboard.data import decision_summary
from modelmix.gateway import Gateway
from modelmix.ledger.queries import routing_mix, spend_report, totals
from modelmix.server.auth import Authenticator
from tests.dashboard.ledger_data import config, fill

KEY = "mm-admin-secret"
NOW = time.time()


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fill(tmp_path_factory.mktemp("dash") / "ledger.db", NOW - 3 * 3600)


@pytest.fixture(scope="module")
def client(ledger: Path) -> Iterator[TestClient]:
    gateway = Gateway(config(ledger), env={})  # not started: the dashboard only reads
    app = Starlette(routes=dashboard_routes(gateway, Authenticator(KEY, None, None)))
    with TestClient(app) as c:
        yield c


def test_needs_the_admin_key(client: TestClient) -> None:
    assert client.get("/ui").status_code == 401
    assert "Admin key" in client.get("/ui").text  # the sign-in form
    assert client.get("/ui", headers={"authorization": "Bearer nope"}).status_code == 403
    assert client.get("/ui/api/summary").status_code == 401
    assert client.get("/ui/api/summary?key=nope").status_code == 403
    assert client.post("/ui/login", content=b"key=nope").status_code == 403


def test_forged_cookie_is_refused(ledger: Path) -> None:
    gateway = Gateway(config(ledger), env={})
    app = Starlette(routes=dashboard_routes(gateway, Authenticator(KEY, None, None)))
    with TestClient(app, cookies={"modelmix_ui": "forged"}) as c:
        assert c.get("/ui").status_code == 401


def test_header_key_opens_the_page(client: TestClient) -> None:
    r = client.get("/ui", headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200
    assert "Spend over time" in r.text and "<svg" in r.text
    assert "no budgets configured" in r.text
    assert KEY not in r.text
    assert client.get("/ui?range=5y", headers={"x-api-key": KEY}).status_code == 400


def test_query_key_becomes_a_session_cookie(ledger: Path) -> None:
    gateway = Gateway(config(ledger), env={})
    app = Starlette(routes=dashboard_routes(gateway, Authenticator(KEY, None, None)))
    with TestClient(app) as c:
        r = c.get(f"/ui?key={KEY}&range=7d", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/ui?range=7d"  # the key leaves the address bar
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and KEY not in cookie
        assert c.get("/ui?range=7d").status_code == 200  # the cookie is enough now
        assert c.get("/ui/api/summary").status_code == 200
    with TestClient(app) as c:
        r = c.post(
            "/ui/login",
            content=f"key={KEY}".encode(),
            headers={"content-type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and r.headers["location"] == "/ui"
        assert c.get("/ui").status_code == 200


def test_json_numbers_equal_the_queries(client: TestClient, ledger: Path) -> None:
    data = client.get("/ui/api/summary?range=24h", headers={"x-api-key": KEY}).json()
    since = data["since"]
    t = totals(ledger, since)
    assert Decimal(data["totals"]["cost_usd"]) == t["cost_usd"] == Decimal("0.02813")
    assert data["totals"]["requests"] == t["requests"] == 6
    assert data["totals"]["fallbacks"] == 1 and data["totals"]["escalations"] == 1
    for group in ("model", "team", "route", "key"):
        expected = {r["group"]: r["cost_usd"] for r in spend_report(ledger, since, group)}  # type: ignore[arg-type]
        assert {r["group"]: Decimal(r["cost_usd"]) for r in data["by"][group]} == expected
    assert [(m["route"], m["model"], m["requests"]) for m in data["routing_mix"]] == [
        (m["route"], m["model"], m["requests"]) for m in routing_mix(ledger, since)
    ]
    assert Decimal(data["savings"]["total"]["saved_usd"]) == Decimal("0.0274")
    assert data["savings"]["quality"]["available"] is False
    assert sum(b["requests"] for b in data["timeseries"]) == 6
    assert sum(Decimal(b["cost_usd"]) for b in data["timeseries"]) == Decimal("0.02813")
    assert data["budgets"] is None
    assert [r["id"] for r in data["recent"]][:2] == ["r6", "r5"]
    assert data["recent"][3]["decision_summary"] == "cascade; chose big; escalated"
    one_hour = client.get("/ui/api/summary?range=1h", headers={"x-api-key": KEY}).json()
    assert one_hour["totals"]["requests"] == 0


def test_budget_status_is_shown(ledger: Path) -> None:
    class FakeBudgets:
        def status(self) -> list[dict[str, object]]:
            return [
                {
                    "name": "team:search/month",
                    "scope": "team",
                    "subject": "search",
                    "kind": "hard",
                    "period": "month",
                    "limit_usd": Decimal("10"),
                    "allowed_usd": Decimal("10"),
                    "spent_usd": Decimal("7.5"),
                    "reserved_usd": Decimal("0.5"),
                    "remaining_usd": Decimal("2"),
                    "pressure": 0.0,
                }
            ]

    gateway = Gateway(config(ledger), env={})
    gateway.budgets = FakeBudgets()  # type: ignore[attr-defined]
    app = Starlette(routes=dashboard_routes(gateway, Authenticator(KEY, None, None)))
    with TestClient(app) as c:
        page = c.get("/ui", headers={"x-api-key": KEY}).text
        assert "team:search/month" in page and "$7.5000" in page
        data = c.get("/ui/api/summary", headers={"x-api-key": KEY}).json()
        assert data["budgets"][0]["remaining_usd"] == "2"


def test_no_admin_key_configured_refuses_everyone(ledger: Path) -> None:
    gateway = Gateway(config(ledger), env={})
    app = Starlette(routes=dashboard_routes(gateway, Authenticator(None, None, None)))
    with TestClient(app) as c:
        assert c.get("/ui", headers={"x-api-key": "anything"}).status_code == 403


def test_missing_ledger_page(tmp_path: Path) -> None:
    gateway = Gateway(config(tmp_path / "none.db"), env={}, ledger=False)
    app = Starlette(routes=dashboard_routes(gateway, Authenticator(KEY, None, None)))
    with TestClient(app) as c:
        r = c.get("/ui", headers={"x-api-key": KEY})
        assert r.status_code == 200 and "No ledger yet" in r.text


def test_decision_summary() -> None:
    d = {
        "strategy": "rules",
        "rule": None,
        "candidates": [{"model": "a", "eligible": False, "reason": "no tool support"}],
    }
    assert decision_summary(d) == "rules; default chain; skipped a (no tool support)"
    assert decision_summary({}) == "direct"
    cooled = {
        "strategy": "fallback",
        "candidates": [{"model": "a", "eligible": True}, {"model": "b", "eligible": True}],
        "skipped": [{"model": "a", "reason": "cooling down", "at_attempt": 0}],
        "chosen": "b",
    }
    assert decision_summary(cooled) == "fallback; chose b; skipped a (cooling down)"
