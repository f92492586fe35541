"""The dashboard through the gateway's real app (``create_app``, started): access control, the
JSON's numbers, and the budgets configured for it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from modelmix.dashboard.data import decision_summary
from modelmix.gateway import Gateway
from modelmix.ledger.db import Location
from modelmix.ledger.queries import routing_mix, spend_report, totals
from modelmix.server.app import create_app
from tests.conftest import BACKENDS, ledger_location
from tests.dashboard.ledger_data import config, fill

KEY = "mm-admin-secret"
NOW = time.time()
#: team search has spent r1 + r2 = 0.025 of it in the prepared rows
BUDGETS = {"teams": {"search": [{"kind": "hard", "period": "total", "limit_usd": "0.05"}]}}


@pytest.fixture(scope="module", params=BACKENDS)
def ledger(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Location:
    return fill(ledger_location(request, tmp_path_factory.mktemp("dash")), NOW - 3 * 3600)


@contextmanager
def _app(
    ledger: Path, admin: str | None = KEY, *, ledger_on: bool = True, **extra: Any
) -> Iterator[TestClient]:
    cfg = config(ledger, server={"admin_key_env": "MM_ADMIN"}, **extra)
    gateway = Gateway(cfg, env={"MM_ADMIN": admin} if admin else {}, ledger=ledger_on)
    with TestClient(create_app(gateway)) as c:
        yield c


@pytest.fixture(scope="module")
def client(ledger: Path) -> Iterator[TestClient]:
    with _app(ledger, budgets=BUDGETS) as c:
        yield c


def test_needs_the_admin_key(client: TestClient) -> None:
    assert client.get("/ui").status_code == 401
    assert "Admin key" in client.get("/ui").text  # the sign-in form
    assert client.get("/ui", headers={"authorization": "Bearer nope"}).status_code == 403
    assert client.get("/ui/api/summary").status_code == 401
    assert client.get("/ui/api/summary?key=nope").status_code == 403
    assert client.post("/ui/login", content=b"key=nope").status_code == 403


def test_forged_cookie_is_refused(client: TestClient) -> None:
    client.cookies.set("modelmix_ui", "forged")
    try:
        assert client.get("/ui").status_code == 401
    finally:
        client.cookies.clear()


def test_header_key_opens_the_page(client: TestClient) -> None:
    r = client.get("/ui", headers={"authorization": f"Bearer {KEY}"})
    assert r.status_code == 200
    assert "Spend over time" in r.text and "<svg" in r.text
    assert "team:search:hard:total" in r.text and "$0.0250" in r.text  # the configured budget
    assert KEY not in r.text
    assert client.get("/ui?range=5y", headers={"x-api-key": KEY}).status_code == 400


def test_query_key_becomes_a_session_cookie(ledger: Path) -> None:
    with _app(ledger) as c:
        r = c.get(f"/ui?key={KEY}&range=7d", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/ui?range=7d"  # the key leaves the address bar
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and KEY not in cookie
        assert c.get("/ui?range=7d").status_code == 200  # the cookie is enough now
        assert c.get("/ui/api/summary").status_code == 200
    with _app(ledger) as c:
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
    (budget,) = data["budgets"]
    assert budget["name"] == "team:search:hard:total"
    assert Decimal(budget["spent_usd"]) == Decimal("0.025")  # seeded from the ledger
    assert Decimal(budget["remaining_usd"]) == Decimal("0.025")
    assert [r["id"] for r in data["recent"]][:2] == ["r6", "r5"]
    assert data["recent"][3]["decision_summary"] == "cascade; chose big; escalated"
    one_hour = client.get("/ui/api/summary?range=1h", headers={"x-api-key": KEY}).json()
    assert one_hour["totals"]["requests"] == 0


def test_budget_status_follows_real_spend(ledger: Path) -> None:
    """A soft team budget, past its limit after the prepared rows: the page shows it, and a
    real request's cost moves the counter."""
    soft = {"teams": {"ads": [{"kind": "soft", "period": "total", "limit_usd": "0.002"}]}}
    with _app(ledger, budgets=soft) as c:
        page = c.get("/ui", headers={"x-api-key": KEY}).text
        assert "team:ads:soft:total" in page and "$0.0027" in page  # r3 spent it
        data = c.get("/ui/api/summary", headers={"x-api-key": KEY}).json()
        (row,) = data["budgets"]
        assert Decimal(row["spent_usd"]) == Decimal("0.0027") and row["pressure"] == 1.0
        assert Decimal(row["remaining_usd"]) == 0


def test_no_admin_key_configured_refuses_everyone(ledger: Path) -> None:
    with _app(ledger, admin=None) as c:
        assert c.get("/ui", headers={"x-api-key": "anything"}).status_code == 403


def test_missing_ledger_page(tmp_path: Path) -> None:
    with _app(tmp_path / "none.db", ledger_on=False) as c:
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


def test_deployments_show_live_latency_and_load(tmp_path: Path) -> None:
    """A real request through the gateway moves its deployment's live estimates, which the
    JSON and the page show (adaptive routing's latency and load card)."""
    with _app(tmp_path / "ledger.db") as c:
        before = c.get("/ui/api/summary", headers={"x-api-key": KEY}).json()["deployments"]
        assert {r["deployment"] for r in before} == {"small#0", "big#0"}
        assert all(r["samples"] == 0 and r["ttft_ms"] is None for r in before)
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        r = c.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {KEY}"})
        assert r.status_code == 200, r.text
        data = c.get("/ui/api/summary", headers={"x-api-key": KEY}).json()
        small = next(r for r in data["deployments"] if r["deployment"] == "small#0")
        assert small["samples"] == 1 and small["ttft_ms"] > 0 and small["in_flight"] == 0
        page = c.get("/ui", headers={"x-api-key": KEY}).text
        assert "Deployments: latency and load" in page and "small#0" in page
