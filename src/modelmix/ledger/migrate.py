"""Move a whole ledger from one backend to another (``modelmix ledger migrate``).

Every table (requests, attempts, keys, the quality tables, policy versions and state, stored
responses) is copied from the source into an *empty* target, in one target transaction, then
the row counts of both sides are compared table by table. A target that already holds rows is
refused before anything is written (so running the command twice cannot duplicate a ledger),
and any failure rolls the target back to empty. The source is only read (its schema is first
brought up to date, as every modelmix command does). Either side may be a SQLite file or a
PostgreSQL URL; into PostgreSQL the rows go by ``COPY``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from modelmix.ledger.db import Database, Location, as_location, dialect, display, is_postgres
from modelmix.ledger.opening import open_quality_db

__all__ = ["TABLES", "MigrateError", "migrate_ledger", "parse_location"]

#: Every table of a ledger, in copy order (schema version tables are the target's own).
TABLES = (
    "api_keys",
    "requests",
    "attempts",
    "eval_runs",
    "eval_results",
    "eval_cells",
    "feedback",
    "samples",
    "judgements",
    "policy_versions",
    "policy_events",
    "policy_state",
    "alarms",
    "stored_responses",
)

#: Tables whose integer key PostgreSQL generates (identity): their sequence must move past the
#: copied ids.
_IDENTITY = {"feedback": "id", "policy_events": "seq", "alarms": "id"}

_FETCH = 2000


class MigrateError(RuntimeError):
    """The migration cannot run or did not verify; the target is left as it was."""


def parse_location(text: str) -> Location:
    """``sqlite:PATH``, a plain path, or a ``postgresql://`` URL."""
    if text.startswith("sqlite:"):
        return Path(text.removeprefix("sqlite:"))
    return as_location(text)


def _columns(db: Database, table: str) -> list[str]:
    cur: Any = db.execute(f"SELECT * FROM {table} LIMIT 0")
    return [d[0] for d in cur.description]


def _count(db: Database, table: str) -> int:
    return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _rows(db: Database, table: str, columns: list[str]) -> Iterator[list[Any]]:
    order = "rowid" if dialect(db) == "sqlite" else "ctid"  # insertion order, kept
    cur: Any = db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
    while True:
        chunk = cur.fetchmany(_FETCH)
        if not chunk:
            return
        yield from ([*row] for row in chunk)


def _to_sqlite(value: Any) -> Any:
    return format(value, "f") if isinstance(value, Decimal) else value


def _copy_table(source: Database, target: Database, table: str) -> None:
    columns = _columns(target, table)
    missing = set(columns) - set(_columns(source, table))
    if missing:
        raise MigrateError(f"source table {table} lacks columns {sorted(missing)}")
    rows = _rows(source, table, columns)
    if dialect(target) == "postgresql":
        pg: Any = target
        with (
            pg.conn.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        if table in _IDENTITY:
            key = _IDENTITY[table]
            target.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', '{key}'), "
                f"COALESCE(MAX({key}), 0) + 1, false) FROM {table}"
            )
        return
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    batch: list[list[Any]] = []
    for row in rows:
        batch.append([_to_sqlite(v) for v in row])
        if len(batch) >= _FETCH:
            target.executemany(sql, batch)
            batch.clear()
    if batch:
        target.executemany(sql, batch)


def migrate_ledger(
    source_at: Location,
    target_at: Location,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Copy every table of the ledger at ``source_at`` into the empty ledger at ``target_at``
    and verify the row counts; returns rows per table. Raises ``MigrateError``."""
    if str(source_at) == str(target_at):
        raise MigrateError("source and target are the same ledger")
    if not is_postgres(source_at) and not Path(source_at).is_file():
        raise MigrateError(f"no ledger at {display(source_at)}")
    if not is_postgres(target_at):
        Path(target_at).parent.mkdir(parents=True, exist_ok=True)
    source = open_quality_db(source_at)
    try:
        target = open_quality_db(target_at)
        try:
            return _migrate(source, target, target_at, progress)
        finally:
            target.close()
    finally:
        source.close()


def _migrate(
    source: Database,
    target: Database,
    target_at: Location,
    progress: Callable[[str, int], None] | None,
) -> dict[str, int]:
    busy = {t: n for t in TABLES if (n := _count(target, t))}
    if busy:
        listed = ", ".join(f"{t} ({n} rows)" for t, n in busy.items())
        raise MigrateError(
            f"the target ledger {display(target_at)} is not empty: {listed}; "
            "migrate into an empty database"
        )
    # one snapshot of the source (a gateway still writing to it does not skew the counts)
    pg_source = dialect(source) == "postgresql"
    source.execute("BEGIN ISOLATION LEVEL REPEATABLE READ" if pg_source else "BEGIN")
    try:
        return _copy_all(source, target, progress)
    finally:
        source.execute("ROLLBACK")


def _copy_all(
    source: Database, target: Database, progress: Callable[[str, int], None] | None
) -> dict[str, int]:
    counts = {t: _count(source, t) for t in TABLES}
    target.execute("BEGIN IMMEDIATE")
    try:
        for table in TABLES:
            _copy_table(source, target, table)
            if progress is not None:
                progress(table, counts[table])
        copied = {t: _count(target, t) for t in TABLES}
        wrong = {t: (counts[t], copied[t]) for t in TABLES if counts[t] != copied[t]}
        if wrong:
            raise MigrateError(
                "row counts differ after the copy (source, target): "
                + ", ".join(f"{t} {a} vs {b}" for t, (a, b) in wrong.items())
            )
        target.execute("COMMIT")
    except BaseException:
        if target.in_transaction:
            target.execute("ROLLBACK")
        raise
    return counts
