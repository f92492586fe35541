"""The report queries over a ledger with hand-computed numbers (tests/dashboard/ledger_data)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from modelmix.ledger.db import Location
from modelmix.ledger.queries import answered_usage, routing_mix, spend_report, timeseries, totals
from tests.conftest import BACKENDS, ledger_location
from tests.dashboard.ledger_data import fill

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Location:
    return fill(ledger_location(request, tmp_path_factory.mktemp("reports")), T0)


def test_totals(db: Path) -> None:
    t = totals(db)
    assert t["cost_usd"] == Decimal("0.02813")
    assert (t["requests"], t["errors"], t["fallbacks"]) == (6, 1, 1)
    assert (t["cascade_requests"], t["escalations"], t["escalation_rate"]) == (2, 1, 0.5)
    assert (t["prompt_tokens"], t["completion_tokens"]) == (3410, 810)
    assert t["error_rate"] == pytest.approx(1 / 6)
    assert t["p99_latency_ms"] == 400.0
    empty = totals(db, since=T0 + 10**6)
    assert (empty["requests"], empty["cost_usd"], empty["p50_latency_ms"]) == (0, 0, None)


def test_spend_by_team_tag_and_key(db: Path) -> None:
    team = {r["group"]: r["cost_usd"] for r in spend_report(db, group_by="team")}
    assert team == {
        "search": Decimal("0.025"),
        "ads": Decimal("0.0027"),
        "(no team)": Decimal("0.00043"),
    }
    tag = {r["group"]: (r["requests"], r["cost_usd"]) for r in spend_report(db, group_by="tag")}
    assert tag == {
        "a": (2, Decimal("0.025")),
        "b": (1, Decimal("0.002")),
        "(untagged)": (4, Decimal("0.00313")),
    }
    key = {r["group"]: r for r in spend_report(db, group_by="key")}
    assert key["k1"]["cost_usd"] == Decimal("0.025") and key["k1"]["fallbacks"] == 1
    assert key["k2"]["escalations"] == 1


def test_by_model_route_hour(db: Path) -> None:
    model = {r["group"]: r for r in spend_report(db, group_by="model")}
    assert model["big"]["cost_usd"] == Decimal("0.0257")  # r2 0.023 + r3 (both tiers) 0.0027
    assert model["(none)"]["errors"] == 1
    route = {r["group"]: r["requests"] for r in spend_report(db, group_by="route")}
    assert route == {"auto": 5, "(no route)": 1}
    hours = spend_report(db, group_by="hour")
    assert [(h["group"], h["requests"]) for h in hours] == [
        ("2023-11-14 22:00", 3),
        ("2023-11-14 23:00", 3),
    ]
    until = spend_report(db, group_by="model", until=T0 + 15)
    assert sum(r["requests"] for r in until) == 2


def test_timeseries_fills_gaps(db: Path) -> None:
    series = timeseries(db, since=T0 - 1800, until=T0 + 3 * 1800, bucket=1800)
    # buckets from 21:30 to 23:30 UTC: T0 (22:13) and T0 + 1 h (23:13), empty ones filled
    assert [b["requests"] for b in series] == [0, 3, 0, 3, 0]
    assert series[1]["start"] == T0 - 800
    assert series[1]["cost_usd"] == Decimal("0.0277")
    assert series[3]["errors"] == 1
    assert sum((b["cost_usd"] for b in series), Decimal(0)) == Decimal("0.02813")
    with pytest.raises(ValueError):
        timeseries(db, since=0, until=T0, bucket=1)


def test_routing_mix(db: Path) -> None:
    mix = routing_mix(db)
    assert [(m["model"], m["requests"]) for m in mix] == [("big", 2), ("small", 2), ("(failed)", 1)]
    assert sum(m["share"] for m in mix) == pytest.approx(1.0)


def test_answered_usage_uses_the_answering_attempt(db: Path) -> None:
    rows = {r["id"]: r for r in answered_usage(db)}
    assert (rows["r3"]["prompt_tokens"], rows["r3"]["completion_tokens"]) == (100, 50)
    assert rows["r3"]["cost_usd"] == Decimal("0.0027")  # both tiers
    assert (rows["r2"]["prompt_tokens"], rows["r2"]["final_model"]) == (2000, "big")
    assert rows["r4"]["prompt_tokens"] == 0 and rows["r4"]["status"] == "error"
