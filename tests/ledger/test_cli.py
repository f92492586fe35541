from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from modelmix.cli import main
from modelmix.cli.ledger_cmds import attempt_chain, logs, parse_since, report
from modelmix.ledger.db import Location
from modelmix.ledger.keys import KeyStore
from modelmix.ledger.postgres import open_writer_ledger
from tests.conftest import BACKENDS, ledger_location
from tests.helpers import sim_model
from tests.ledger.builders import make_record

T0 = 1_700_000_000.0


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    _fill(path)
    return path


@pytest.fixture(params=BACKENDS)
def any_db(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """The same rows on each ledger backend in turn."""
    location = ledger_location(request, tmp_path)
    _fill(location)
    return location


def _fill(path: Location) -> None:
    with open_writer_ledger(path) as ledger:
        ledger.record(make_record("req-old", started_at=T0, cost="0.5", route="cheap"))
        ledger.record(
            make_record(
                "req-retry",
                started_at=T0 + 60,
                model="big",
                fail_first_on="small",
                cost="0.25",
                latency_ms=1234.0,
            )
        )
        ledger.record(make_record("req-fail", started_at=T0 + 120, status="error"))


def test_logs_table(any_db: Location) -> None:
    out = CliRunner().invoke(logs, ["--db", str(any_db)]).output
    assert "small:429 -> big:ok" in out
    assert out.index("req-fail") < out.index("req-retry") < out.index("req-old")  # newest first
    assert "$0.250000" in out and "1,234 ms" in out and "100/20" in out
    assert "503" in out  # the failed request's status
    only = CliRunner().invoke(logs, ["--db", str(any_db), "--route", "cheap"]).output
    assert "req-old" in only and "req-retry" not in only
    one = CliRunner().invoke(logs, ["--db", str(any_db), "-n", "1"]).output
    assert "req-fail" in one and "req-old" not in one


def test_logs_json(any_db: Location) -> None:
    result = CliRunner().invoke(logs, ["--db", str(any_db), "--json", "--model", "big"])
    assert result.exit_code == 0
    rows = json.loads(result.output)
    assert [r["id"] for r in rows] == ["req-retry"]
    assert rows[0]["cost_usd"] == "0.25"  # money stays an exact string in JSON
    assert [a["model"] for a in rows[0]["attempts"]] == ["small", "big"]


def test_report(any_db: Location) -> None:
    result = CliRunner().invoke(report, ["--db", str(any_db), "--by", "model"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "gpt-4o-mini" in out and "big" in out and "(none)" in out
    assert "$0.750000" in out  # the total footer, exact
    day = CliRunner().invoke(report, ["--db", str(any_db), "--by", "day", "--json"])
    assert json.loads(day.output)["by"]["day"] == [
        {
            "group": "2023-11-14",
            "requests": 3,
            "errors": 1,
            "prompt_tokens": 200,
            "completion_tokens": 40,
            "cached_tokens": 20,
            "reasoning_tokens": 0,
            "cost_usd": "0.75",
            "unpriced": 0,
            "estimated": 0,
            "total_tokens": 240,
            "avg_latency_ms": pytest.approx((100 + 1234 + 100) / 3),
            "p50_latency_ms": 100.0,
            "p95_latency_ms": 1234.0,
            "p99_latency_ms": 1234.0,
            "p50_ttft_ms": 40.0,
            "fallbacks": 1,
            "cascade_requests": 0,
            "escalations": 0,
            "error_rate": pytest.approx(1 / 3),
            "fallback_rate": pytest.approx(1 / 3),
            "escalation_rate": None,
        }
    ]
    recent = CliRunner().invoke(report, ["--db", str(any_db), "--since", "24h"])
    assert "no requests in that period" in recent.output  # T0 is in 2023
    iso = CliRunner().invoke(
        report, ["--db", str(any_db), "--since", "2023-11-14T22:14:00", "--json"]
    )
    assert json.loads(iso.output)["totals"]["requests"] == 2
    bad = CliRunner().invoke(report, ["--db", str(any_db), "--since", "yesterday"])
    assert bad.exit_code != 0 and "24h" in bad.output


def test_missing_ledger_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(logs, ["--db", str(tmp_path / "none.db")])
    assert result.exit_code == 1
    assert "no ledger at" in result.output


def test_default_db_path_from_modelmix_home(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELMIX_HOME", str(db.parent))
    assert "req-retry" in CliRunner().invoke(logs, []).output


def test_db_from_a_config_file(db: Path, tmp_path: Path) -> None:
    config = tmp_path / "modelmix.yaml"
    config.write_text(
        yaml.safe_dump({"models": [sim_model("m1")], "ledger": {"path": str(db)}}),
        encoding="utf-8",
    )
    result = CliRunner().invoke(logs, ["--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "req-retry" in result.output


def test_keys_commands(tmp_path: Path) -> None:
    """Through the real ``modelmix`` command group."""
    db = str(tmp_path / "ledger.db")

    def keys(args: list[str]) -> object:
        return CliRunner().invoke(main, ["keys", *args])

    created = keys(["create", "alice", "--db", db])
    assert created.exit_code == 0, created.output
    plaintext = next(line for line in created.output.splitlines() if line.startswith("mm-"))
    info = KeyStore(db).verify(plaintext)
    assert info is not None and info.name == "alice"
    dup = keys(["create", "alice", "--db", db])
    assert dup.exit_code == 1 and "already exists" in dup.output
    listed = keys(["list", "--db", db]).output
    assert "alice" in listed and info.id in listed and "active" in listed
    assert plaintext not in listed and plaintext[:8] in listed
    assert keys(["revoke", "alice", "--db", db]).exit_code == 0
    assert "revoked" in keys(["list", "--db", db]).output
    assert KeyStore(db).verify(plaintext) is None
    again = keys(["revoke", "alice", "--db", db])
    assert again.exit_code == 1 and "no active key" in again.output


def test_parse_since() -> None:
    assert parse_since("24h", now=100_000.0) == 100_000.0 - 86_400
    assert parse_since("30m", now=1000.0) == 1000.0 - 1800
    assert parse_since("7d", now=0.0) == -7 * 86_400
    assert parse_since("2023-11-14") == datetime(2023, 11, 14, tzinfo=UTC).timestamp()
    assert (
        parse_since("2023-11-14T00:00:00+02:00")
        == datetime(2023, 11, 13, 22, tzinfo=UTC).timestamp()
    )


def test_attempt_chain_shows_models_skipped_where_they_were_passed_over() -> None:
    attempts = [
        {"model": "a", "status": "error", "http_status": 500, "error_kind": "server"},
        {"model": "c", "status": "ok", "http_status": 200, "error_kind": None},
    ]
    skipped = [{"model": "b", "reason": "cooling down", "at_attempt": 1}]
    assert attempt_chain(attempts, skipped) == "a:500 -> b:cooling down -> c:ok"
    assert attempt_chain([], skipped) == "b:cooling down"
