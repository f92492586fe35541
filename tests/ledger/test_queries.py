from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from modelmix.ledger.db import Location
from modelmix.ledger.postgres import open_writer_ledger
from modelmix.ledger.queries import LedgerNotFound, get_request, recent_requests, spend_report
from tests.conftest import BACKENDS, ledger_location
from tests.ledger.builders import make_record

DAY = 86_400.0
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Location:
    path = ledger_location(request, tmp_path_factory.mktemp("ledger"))
    with open_writer_ledger(path) as ledger:
        # 10 cheap requests on mini (latencies 100..1000 ms), 0.1 each: float sums would drift
        for i in range(10):
            ledger.record(
                make_record(
                    f"mini-{i}",
                    started_at=T0 + i,
                    cost="0.1",
                    latency_ms=100.0 * (i + 1),
                    route="fast",
                    key_id="key_a",
                )
            )
        # 3 on big the next day, one of them after a 429 on mini
        for i in range(3):
            ledger.record(
                make_record(
                    f"big-{i}",
                    started_at=T0 + DAY + i,
                    model="big",
                    cost="0.02",
                    latency_ms=50.0,
                    fail_first_on="mini" if i == 0 else None,
                )
            )
        ledger.record(
            make_record(
                "failed", started_at=T0 + DAY + 10, status="error", route="fast", latency_ms=5.0
            )
        )
        ledger.record(
            make_record(
                "unpriced", started_at=T0 + DAY + 11, model="local", unpriced_attempt=True, cost="0"
            )
        )
    return path


def test_recent_requests_newest_first_with_attempts(db: Path) -> None:
    rows = recent_requests(db, limit=3)
    assert [r["id"] for r in rows] == ["unpriced", "failed", "big-2"]
    rows = recent_requests(db, limit=100)
    assert len(rows) == 15
    big0 = next(r for r in rows if r["id"] == "big-0")
    assert [(a["model"], a["status"], a["http_status"]) for a in big0["attempts"]] == [
        ("mini", "error", 429),
        ("big", "ok", 200),
    ]
    assert big0["cost_usd"] == Decimal("0.02")
    assert big0["decision"]["candidates"][0]["model"] == "big"
    assert big0["stream"] is False


def test_recent_requests_filters(db: Path) -> None:
    assert {r["id"] for r in recent_requests(db, route="fast", limit=100)} == {
        *(f"mini-{i}" for i in range(10)),
        "failed",
    }
    assert [r["id"] for r in recent_requests(db, model="big")] == ["big-2", "big-1", "big-0"]
    assert recent_requests(db, model="nope") == []


def test_get_request(db: Path) -> None:
    r = get_request(db, "unpriced")
    assert r is not None
    assert r["unpriced"] is True
    assert r["attempts"][0]["cost_usd"] is None
    assert r["attempts"][0]["price_source"] == "unknown"
    assert get_request(db, "missing") is None


def test_spend_by_model_is_exact(db: Path) -> None:
    rows = {r["group"]: r for r in spend_report(db, group_by="model")}
    assert set(rows) == {"gpt-4o-mini", "big", "(none)", "local"}
    mini = rows["gpt-4o-mini"]
    assert mini["cost_usd"] == Decimal("1.0")  # sum(0.1 * 10) as floats is 0.9999999999999999
    assert (mini["requests"], mini["errors"]) == (10, 0)
    assert (mini["prompt_tokens"], mini["completion_tokens"], mini["total_tokens"]) == (
        1000,
        200,
        1200,
    )
    assert mini["avg_latency_ms"] == pytest.approx(550.0)
    assert mini["p50_latency_ms"] == 500.0
    assert mini["p95_latency_ms"] == 1000.0
    assert rows["big"]["cost_usd"] == Decimal("0.06")
    assert rows["(none)"]["errors"] == 1
    assert rows["local"]["unpriced"] == 1
    assert spend_report(db, group_by="model")[0]["group"] == "gpt-4o-mini"  # by cost, desc


def test_spend_by_route_key_day_and_since(db: Path) -> None:
    by_route = {r["group"]: r["requests"] for r in spend_report(db, group_by="route")}
    assert by_route == {"fast": 11, "(no route)": 4}
    by_key = {r["group"]: r for r in spend_report(db, group_by="key")}
    assert by_key["key_a"]["requests"] == 10
    assert by_key["(no key)"]["requests"] == 5
    days = spend_report(db, group_by="day")
    assert [(d["group"], d["requests"], d["cost_usd"]) for d in days] == [
        ("2023-11-14", 10, Decimal("1.0")),
        ("2023-11-15", 5, Decimal("0.06")),
    ]
    since = spend_report(db, since=T0 + DAY, group_by="model")
    assert {r["group"] for r in since} == {"big", "(none)", "local"}


def test_missing_ledger_and_bad_group(tmp_path: Path, db: Path) -> None:
    with pytest.raises(LedgerNotFound):
        recent_requests(tmp_path / "nope.db")
    with pytest.raises(ValueError):
        spend_report(db, group_by="colour")  # type: ignore[arg-type]
