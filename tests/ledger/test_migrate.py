"""``modelmix ledger migrate``: a SQLite ledger with rows in every table moves to PostgreSQL
(and back) without loss; a non-empty target is refused; the stores read the same answers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelmix.cli import main
from modelmix.evals.store import Cell, EvalStore, ResultRow
from modelmix.ledger.db import Location
from modelmix.ledger.keys import KeyStore
from modelmix.ledger.migrate import TABLES, MigrateError, migrate_ledger
from modelmix.ledger.opening import open_ledger
from modelmix.ledger.pg_schema import MONEY_COLUMNS
from modelmix.ledger.queries import recent_requests, spend_report
from modelmix.ledger.stored_responses import ResponseStore
from modelmix.quality.policy_store import PolicyStore
from modelmix.quality.store import JUDGEMENT_SQL, SAMPLE_SQL, QualityStore
from tests.dashboard.ledger_data import fill
from tests.pg import PgServer

T0 = 1_700_000_000.0


def _fill_every_table(path: Path) -> str:
    """Rows in every ledger table; returns a virtual key's plaintext."""
    fill(path, T0)  # requests and attempts
    keys = KeyStore(path)
    _, plaintext = keys.create("alice", team="search", tags=["a"], allowed_models=["small"])
    keys.create("bob", budgets=[{"kind": "hard", "period": "month", "limit_usd": "1.5"}])
    keys.revoke("bob")
    keys.close()
    with EvalStore(path) as evals:
        evals.open_run("e1", kind="eval", dataset="d.jsonl", dataset_hash="h", models=["small"])
        evals.put_results(
            [
                ResultRow("e1", "i1", "small", "easy", 1.0, "exact", cost_usd=Decimal("0.00012")),
                ResultRow("e1", "i2", "small", "easy", 0.0, "exact", error="boom"),
            ]
        )
        cell = Cell("e1", "small", "easy", 2, 0.5, 0.1, 0.9, "wilson", 1, Decimal("0.00006"),
                    Decimal("0.00012"), 12.5, 20.0)  # fmt: skip
        evals.save_cells("e1", [cell])
        evals.finish_run("e1")
    with QualityStore(path) as quality:
        quality.add_feedback("r1", "key_x", 1.0, "good", "nice", at=T0 + 5)
        quality.add_feedback("r2", None, None, "bad", None, at=T0 + 6)
        alarm = quality.raise_alarm("quality_drop", "model:small", "probe", {"z": 3.1}, T0 + 7)
        quality.clear_alarm(alarm, T0 + 8)
        quality.raise_alarm("refusal_rise", "model:big", "live", {}, T0 + 9)
        quality.conn.execute(
            SAMPLE_SQL, ("r1", T0, "auto", "small", "v1", '[{"role":"user"}]', "4", 3, 0, "fp")
        )
        quality.conn.execute(JUDGEMENT_SQL, ("r1", "small", "judge", "big", 0.75, T0 + 1))
    clock = iter(range(100, 200))
    with PolicyStore(path, clock=lambda: float(next(clock))) as policies:
        policies.sync_file({"routes": [{"name": "auto", "models": ["small"]}]}, "config file")
        v2 = policies.add_version({"routes": [{"name": "auto", "models": ["big"]}]}, "big", "cli")
        policies.start_canary(v2, 0.25, "user")
    responses = ResponseStore(path)
    responses.save({"id": "resp_1"}, [{"role": "user"}], request_id="1", key_id="k", previous=None)
    responses.save({"id": "resp_2"}, [{"role": "x"}], request_id="2", key_id="k", previous="resp_1")
    responses.close()
    return plaintext


def _table(at: Location, table: str) -> list[tuple[Any, ...]]:
    """Every row, money as exact decimal text (SQLite stores text, PostgreSQL NUMERIC)."""
    conn = open_ledger(at)
    try:
        cur: Any = conn.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    finally:
        conn.close()
    out = []
    for row in rows:
        out.append(
            tuple(
                format(Decimal(v), "f") if n in MONEY_COLUMNS and v is not None else v
                for n, v in zip(names, row, strict=True)
            )
        )
    return sorted(out, key=repr)


def _migrate_cli(source: str, target: str) -> Any:
    return CliRunner().invoke(main, ["ledger", "migrate", "--from", source, "--to", target])


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "old" / "ledger.db"
    return path, _fill_every_table(path)


def test_sqlite_to_postgres_and_back_keeps_every_row(
    source: tuple[Path, str], pg_server: PgServer, tmp_path: Path
) -> None:
    path, plaintext = source
    url = pg_server.new_database()
    result = CliRunner().invoke(
        main, ["ledger", "migrate", "--from", f"sqlite:{path}", "--to", url]
    )
    assert result.exit_code == 0, result.output
    assert "row counts verified" in result.output
    for table in TABLES:
        rows = _table(path, table)
        assert rows, f"the test ledger should have rows in {table}"
        assert _table(url, table) == rows, table

    # the same answers from the stores and queries on either side
    assert spend_report(url, group_by="team") == spend_report(path, group_by="team")
    assert recent_requests(url, limit=50) == recent_requests(path, limit=50)
    with PolicyStore(path) as a, PolicyStore(url) as b:
        assert b.state() == a.state() and b.state().canary is not None
        assert [v.id for v in b.versions()] == [v.id for v in a.versions()]
        assert b.events() == a.events()
    (alice,) = [k for k in KeyStore(url).list() if k.name == "alice"]
    assert KeyStore(url).verify(plaintext) == alice
    migrated = ResponseStore(url)
    assert migrated.conversation("resp_2", "k") == [{"role": "user"}, {"role": "x"}]
    migrated.close()
    # ids PostgreSQL generates carry on after the copied ones
    with QualityStore(url) as quality:
        added = quality.add_feedback("r3", None, 0.5, None, None, at=T0 + 10)
    assert added["id"] == "fb-3"

    back = tmp_path / "back" / "ledger.db"
    again = _migrate_cli(url, f"sqlite:{back}")
    assert again.exit_code == 0, again.output
    for table in ("requests", "attempts", "api_keys", "eval_cells", "policy_state", "alarms"):
        assert _table(back, table) == _table(path, table), table


def test_a_non_empty_target_is_refused_and_left_alone(
    source: tuple[Path, str], pg_server: PgServer
) -> None:
    path, _ = source
    url = pg_server.new_database()
    migrate_ledger(path, url)
    before = {t: _table(url, t) for t in TABLES}
    result = CliRunner().invoke(
        main, ["ledger", "migrate", "--from", f"sqlite:{path}", "--to", url]
    )
    assert result.exit_code == 1
    assert "is not empty" in result.output and "requests (" in result.output
    assert {t: _table(url, t) for t in TABLES} == before


def test_a_failed_copy_leaves_the_target_empty(
    source: tuple[Path, str], pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelmix.ledger import migrate as migrate_mod

    path, _ = source
    url = pg_server.new_database()
    real = migrate_mod._copy_table

    def failing(src: Any, dst: Any, table: str) -> None:
        if table == "samples":
            raise MigrateError("disk on fire")
        real(src, dst, table)

    monkeypatch.setattr(migrate_mod, "_copy_table", failing)
    with pytest.raises(MigrateError, match="disk on fire"):
        migrate_ledger(path, url)
    assert all(_table(url, t) == [] for t in TABLES)


def test_missing_source_is_a_clear_error(tmp_path: Path, pg_server: PgServer) -> None:
    result = CliRunner().invoke(
        main,
        ["ledger", "migrate", "--from", f"sqlite:{tmp_path}/none.db", "--to", pg_server.url()],
    )
    assert result.exit_code == 1 and "no ledger at" in result.output
    assert not (tmp_path / "none.db").exists()
