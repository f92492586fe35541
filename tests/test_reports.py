"""Savings against a baseline and the report exports (exact money, hand-computed values)."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelmix.cli import main
from modelmix.ledger.db import Location
from modelmix.reports import (
    NO_QUALITY_DATA,
    build_report,
    model_prices,
    route_baselines,
    savings_report,
    write_csv,
)
from tests.conftest import BACKENDS, ledger_location
from tests.dashboard.ledger_data import config, fill

T0 = 1_700_000_000.0


@pytest.fixture(scope="module", params=BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Location:
    return fill(ledger_location(request, tmp_path_factory.mktemp("savings")), T0)


def test_default_baseline_is_the_most_expensive_output_price(db: Path) -> None:
    cfg = config(db)
    baselines = route_baselines(cfg, model_prices(cfg))
    assert baselines["auto"].model == "big"
    assert baselines["auto"].reason == "most expensive by output price"
    no_prices = route_baselines(cfg, {"small": None, "big": None})
    assert no_prices["auto"].model is None


def test_savings_by_hand(db: Path) -> None:
    cfg = config(db)
    s = savings_report(db, route_baselines(cfg, model_prices(cfg)))
    (auto,) = s["routes"]
    # on big: r1 1000*10e-6 + 500*30e-6 = 0.025; r2 0.023; r3 (the answer) 0.0025; r6 0.005
    assert auto["baseline_cost_usd"] == Decimal("0.0555")
    # real: 0.002 + 0.023 + 0.0027 (both cascade tiers) + 0 (failed r4) + 0.0004
    assert auto["actual_cost_usd"] == Decimal("0.0281")
    assert auto["saved_usd"] == Decimal("0.0274")
    assert auto["saved_pct"] == pytest.approx(0.0274 / 0.0555)
    assert (auto["requests"], auto["answered"], auto["on_baseline"]) == (5, 4, 2)
    assert s["total"]["saved_usd"] == Decimal("0.0274")
    assert s["unrouted"] == {"requests": 1, "cost_usd": Decimal("0.00003")}
    assert s["quality"] == {"available": False, "note": NO_QUALITY_DATA}


def test_configured_baseline_wins(db: Path) -> None:
    cfg = config(db, routes=[{"name": "auto", "models": ["small", "big"], "baseline": "small"}])
    baselines = route_baselines(cfg, model_prices(cfg))
    assert (baselines["auto"].model, baselines["auto"].reason) == ("small", "configured")
    (auto,) = savings_report(db, baselines)["routes"]
    # on small: r1 0.002; r2 2000*1e-6 + 100*2e-6 = 0.0022; r3 0.0002; r6 0.0004
    assert auto["baseline_cost_usd"] == Decimal("0.0048")
    assert auto["saved_usd"] == Decimal("0.0048") - Decimal("0.0281")  # dearer than small


def test_unknown_route_has_no_baseline(db: Path) -> None:
    s = savings_report(db, {})
    assert s["routes"][0]["saved_usd"] is None
    assert s["routes"][0]["baseline_reason"] == "route not in the current config"
    assert s["total"]["saved_usd"] == 0


def test_csv_export_is_exact(db: Path) -> None:
    cfg = config(db)
    data = build_report(db, baselines=route_baselines(cfg, model_prices(cfg)))
    out = io.StringIO()
    n = write_csv(data, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == n
    total = next(r for r in rows if r["dimension"] == "total")
    assert total["cost_usd"] == "0.028130"
    saving = next(r for r in rows if r["dimension"] == "savings")
    assert (saving["group"], saving["baseline"], saving["saved_usd"]) == ("auto", "big", "0.027400")
    assert {r["group"] for r in rows if r["dimension"] == "tag"} == {"a", "b", "(untagged)"}


def test_report_command(db: Path, tmp_path: Path) -> None:
    import yaml

    cfg_file = tmp_path / "mm.yaml"
    cfg_file.write_text(yaml.safe_dump(config(db).model_dump(mode="json", exclude_none=True)))
    out_json, out_csv = tmp_path / "r.json", tmp_path / "r.csv"
    args = ["--config", str(cfg_file), "--by", "team", "--by", "tag", "--savings"]
    result = CliRunner().invoke(
        main, ["report", *args, "--json", str(out_json), "--csv", str(out_csv)]
    )
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # a long ledger URL may wrap the summary line
    assert "spend by team" in text and "search" in text and "(untagged)" in text
    assert "$0.027400" in text  # saved
    assert "no eval or feedback data" in text
    assert "1 of 2 cascade requests escalated" in text
    data = json.loads(out_json.read_text())
    assert data["totals"]["cost_usd"] == "0.028130"
    assert Decimal(data["savings"]["total"]["baseline_cost_usd"]) == Decimal("0.0555")
    assert set(data["by"]) == {
        "model", "route", "key", "team", "tag", "day", "hour", "confidence"
    }  # fmt: skip
    confidence = {r["group"]: (r["requests"], r["cost_usd"]) for r in data["by"]["confidence"]}
    assert confidence == {"exact": (5, "0.028100"), "estimated": (1, "0.000030")}
    assert data["totals"]["estimated"] == 1
    assert "$0.000430~" in text and "~ some costs are estimates" in text  # (no team): r4-r6
    assert out_csv.read_text().startswith("dimension,group,")


def test_quality_hook_puts_measured_quality_beside_the_savings(db: Path) -> None:
    """The ``QualitySource`` hook (evals / feedback, issue 6): here a source that measures
    from the ledger itself, the share of answered requests per route."""
    from modelmix.ledger.opening import open_ledger

    class AnsweredShare:
        description = "share of requests answered"

        def route_quality(
            self, route: str, baseline: str | None, since: float | None, until: float | None
        ) -> dict[str, float] | None:
            conn = open_ledger(db)
            try:
                n, ok = conn.execute(
                    "SELECT count(*), sum(CASE WHEN status = 'ok' THEN 1 ELSE 0 END) "
                    "FROM requests WHERE route = ?",
                    (route,),
                ).fetchone()
            finally:
                conn.close()
            return {"samples": n, "quality": ok / n} if n else None

    cfg = config(db)
    s = savings_report(db, route_baselines(cfg, model_prices(cfg)), quality=AnsweredShare())
    (auto,) = s["routes"]
    assert auto["quality"] == {"samples": 5, "quality": 0.8}  # r4 failed
    assert s["quality"] == {
        "available": True,
        "note": "share of requests answered (1 of 1 routes measured)",
    }
    assert (
        savings_report(db, route_baselines(cfg, model_prices(cfg)))["routes"][0]["quality"] is None
    )
