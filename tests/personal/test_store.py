"""The personalisation table on both ledger backends: switching off and on, reset, reading it
from a ledger where it was never created, and the CLI on an empty table."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from modelmix.cli import main
from modelmix.ledger.db import Location
from modelmix.ledger.opening import open_ledger
from modelmix.personal.store import PersonalStore, served_p, subjects_of, team_offsets


def test_subjects_most_specific_first() -> None:
    assert subjects_of("k1", "t", ["user:u", "env:prod"]) == [
        "user:u",
        "key:k1",
        "team:t",
        "tag:env:prod",
    ]
    assert subjects_of(None, None, []) == []


def test_served_p_reads_the_global_prediction_of_the_model_that_answered() -> None:
    decision = {"candidates": [{"model": "a", "p_good": 0.4}, {"model": "b", "p_good": 0.9}]}
    assert served_p(decision, "b") == 0.9
    assert served_p(decision, "c") is None
    assert served_p({"strategy": "fallback"}, "a") is None


def test_disable_enable_and_reset(ledger_at: Location) -> None:
    open_ledger(ledger_at).close()
    assert team_offsets(ledger_at) == []  # never created: nothing, and nothing created
    clock = iter([100.0, 101.0, 102.0, 103.0, 104.0, 105.0, 106.0, 107.0, 108.0])
    store = PersonalStore(ledger_at, clock=lambda: next(clock))
    try:
        assert store.refresh(20.0, 1.0, 3600.0) == []  # no labelled requests
        store.conn.execute(
            "INSERT INTO personal_offsets (subject, logit_offset, n, updated_at) "
            "VALUES ('team:a', 0.5, 30, 1), ('team:b', -0.25, 12, 1)"
        )
        assert store.active() == {"team:a": 0.5, "team:b": -0.25}
        store.set_disabled("team:a", True)
        assert store.active() == {"team:b": -0.25}
        store.set_disabled("*", True)
        assert store.active() == {}
        store.set_disabled("*", False)
        store.set_disabled("team:a", False)
        assert store.active() == {"team:a": 0.5, "team:b": -0.25}
        store.reset("team:b")
        reset = next(r for r in store.rows() if r["subject"] == "team:b")
        assert reset["logit_offset"] == 0 and reset["n"] == 0 and reset["since"] > 0
        assert store.active() == {"team:a": 0.5}
    finally:
        store.close()
    assert [r["subject"] for r in team_offsets(ledger_at)] == ["team:a", "team:b"]


def test_show_on_an_empty_table(tmp_path: Path) -> None:
    db = str(tmp_path / "ledger.db")
    result = CliRunner().invoke(main, ["policy", "personal", "show", "--db", db])
    assert result.exit_code == 0 and "no personalisation yet" in result.output
    result = CliRunner().invoke(main, ["policy", "personal", "disable", "--db", db])
    assert result.exit_code == 0 and "everyone: personalisation disabled" in result.output
    result = CliRunner().invoke(main, ["policy", "personal", "show", "--db", db])
    assert "disabled" in result.output
