from __future__ import annotations

import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from modelmix.ledger import sqlite as sqlite_mod
from modelmix.ledger.records import RequestRecord
from modelmix.ledger.schema import SCHEMA_VERSION, SchemaError
from modelmix.ledger.sqlite import SqliteLedger
from tests.ledger.builders import make_record


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    db = tmp_path / "sub" / "ledger.db"
    ledger = SqliteLedger(db)
    ledger.start()
    ledger.record(make_record("r1", fail_first_on="big", cost="0.000000123456789"))
    ledger.record(make_record("r2", unpriced_attempt=True))
    ledger.flush()
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    r1 = conn.execute("SELECT * FROM requests WHERE id = 'r1'").fetchone()
    assert r1["cost_usd"] == "0.000000123456789"  # exact decimal text, no float rounding
    assert orjson.loads(r1["decision"]) == {
        "candidates": [{"model": "gpt-4o-mini", "eligible": True, "p": "0.5"}]
    }
    assert orjson.loads(r1["metadata"]) == {"team": "search"}
    assert (r1["final_model"], r1["n_attempts"], r1["unpriced"], r1["stream"]) == (
        "gpt-4o-mini",
        2,
        0,
        0,
    )
    attempts = conn.execute(
        "SELECT * FROM attempts WHERE request_id = 'r1' ORDER BY seq"
    ).fetchall()
    assert [(a["seq"], a["model"], a["http_status"]) for a in attempts] == [
        (0, "big", 429),
        (1, "gpt-4o-mini", 200),
    ]
    assert attempts[0]["error_kind"] == "rate_limit"
    r2_attempt = conn.execute("SELECT * FROM attempts WHERE request_id = 'r2'").fetchone()
    assert r2_attempt["cost_usd"] is None
    assert r2_attempt["price_source"] == "unknown"
    assert conn.execute("SELECT unpriced FROM requests WHERE id = 'r2'").fetchone()[0] == 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    ledger.close()
    assert ledger.dropped == 0


def test_graceful_close_loses_nothing_from_many_threads(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = SqliteLedger(db, batch_size=97, flush_interval=0.05)
    ledger.start()

    def worker(t: int) -> None:
        for i in range(1_000):
            ledger.record(make_record(f"t{t}-{i}", fail_first_on="a" if i % 3 == 0 else None))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ledger.close()
    assert count(db, "requests") == 5_000
    assert count(db, "attempts") == 5_000 + 5 * 334
    assert ledger.dropped == 0
    assert ledger.written == 5_000
    assert not ledger.alive


def test_record_never_blocks_while_the_database_is_locked(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = SqliteLedger(db, flush_interval=0.01)
    ledger.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock: the writer must wait
    t0 = time.perf_counter()
    for i in range(200):
        ledger.record(make_record(f"r{i}"))
    assert time.perf_counter() - t0 < 0.5
    time.sleep(0.1)
    assert count(db, "requests") == 0
    blocker.execute("ROLLBACK")
    blocker.close()
    ledger.flush()
    assert count(db, "requests") == 200
    ledger.close()


def test_a_bad_record_is_dropped_alone_and_counted(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = SqliteLedger(db, flush_interval=0.5)
    ledger.record(make_record("same"))
    ledger.record(make_record("other"))
    ledger.record(make_record("same"))  # duplicate id: the insert fails
    ledger.record("not a record")  # type: ignore[arg-type]
    ledger.start()
    ledger.flush()
    assert count(db, "requests") == 2
    assert ledger.dropped == 2
    ledger.close()


def test_close_is_idempotent_and_record_after_close_does_not_raise(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    ledger = SqliteLedger(db)
    ledger.record(make_record("before-start"))
    ledger.close()  # never started, but a record was waiting: it is written
    ledger.close()
    assert count(db, "requests") == 1
    ledger.record(make_record("late"))
    assert ledger.dropped == 1
    with pytest.raises(RuntimeError):
        ledger.start()


def test_context_manager_and_empty_attempts(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with SqliteLedger(db) as ledger:
        assert ledger.alive
        ledger.record(
            RequestRecord(
                id="x",
                started_at=1.0,
                api="anthropic",
                requested_model="nope",
                status="error",
                http_status=404,
                error="unknown model",
            )
        )
    assert count(db, "requests") == 1
    assert count(db, "attempts") == 0
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT cost_usd FROM requests").fetchone()[0] == "0"
        assert Decimal(conn.execute("SELECT cost_usd FROM requests").fetchone()[0]) == 0


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with SqliteLedger(db):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaError):
        SqliteLedger(db).start()


def test_a_failing_database_drops_and_counts_the_batch_then_keeps_going(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_mod, "_RETRY_DELAYS", (0.0, None))
    db = tmp_path / "ledger.db"
    ledger = SqliteLedger(db, flush_interval=0.01)
    ledger.start()
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE attempts RENAME TO attempts_gone")
    ledger.record(make_record("a"))
    ledger.record(make_record("b"))
    ledger.flush()
    assert ledger.dropped == 2
    assert ledger.alive
    with sqlite3.connect(db) as conn:
        conn.execute("ALTER TABLE attempts_gone RENAME TO attempts")
    ledger.record(make_record("c"))
    ledger.close()
    assert count(db, "requests") == 1
    assert ledger.dropped == 2


def test_a_big_batch_is_committed_in_short_transactions(tmp_path: Path, monkeypatch) -> None:
    sizes: list[int] = []
    real = SqliteLedger._insert

    def insert(conn: sqlite3.Connection, batch) -> None:  # type: ignore[no-untyped-def]
        sizes.append(len(batch))
        real(conn, batch)

    monkeypatch.setattr(SqliteLedger, "_insert", staticmethod(insert))
    db = tmp_path / "ledger.db"
    ledger = SqliteLedger(db, batch_size=512, flush_interval=0.5)
    ledger.start()
    for i in range(100):  # one batch: all recorded well within the flush interval
        ledger.record(make_record(f"r{i}"))
    ledger.close()
    assert count(db, "requests") == 100
    assert sum(sizes) == 100
    chunk = sqlite_mod._CHUNK_ROWS
    assert max(sizes) <= chunk and len(sizes) >= 100 // chunk
