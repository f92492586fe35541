"""Where the ledger lives, and the one connection shape every store and query uses.

A ledger *location* is a filesystem path (SQLite, the embedded default) or a
``postgresql://`` URL. ``opening.open_ledger(location)`` returns a ``Database``: for SQLite the
``sqlite3.Connection`` itself (nothing changes on that path), for PostgreSQL a ``PgDatabase``
speaking the same subset: ``execute`` / ``executemany`` with ``?`` placeholders, rows read by
index or column name (``dict(row)`` works), explicit ``BEGIN`` / ``COMMIT`` / ``ROLLBACK``,
``in_transaction``. The SQL the stores write is portable (``ON CONFLICT`` upserts,
``RETURNING``); ``PgDatabase`` rewrites only mechanical differences, once per statement text:

* ``?`` placeholders become ``%s`` (and a literal ``%`` becomes ``%%``);
* ``json_extract(col, '$.a.b')`` becomes ``(col::jsonb #>> '{a,b}')`` (text);
* ``BEGIN IMMEDIATE`` (SQLite: take the write lock now) becomes ``BEGIN`` plus a transaction
  advisory lock, so read-modify-write transactions (keys, policy state) are serialised
  across processes as they are on SQLite.

psycopg (3) is imported only when a PostgreSQL location is used (``pip install
'modelmix[postgres]'``).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "DB_ERRORS",
    "Cursor",
    "Database",
    "Location",
    "PgDatabase",
    "Row",
    "as_location",
    "db_errors",
    "display",
    "is_postgres",
    "pg_connect",
    "prepare_location",
]

#: A SQLite file path or a ``postgresql://`` URL.
Location = str | Path

_SCHEMES = ("postgresql://", "postgres://")

#: The advisory lock key ``BEGIN IMMEDIATE`` takes on PostgreSQL (any fixed 64-bit number).
WRITE_LOCK = 0x6D6D6C6564676572  # "mmledger"

#: Errors from the database layer (``sqlite3.Error``; ``psycopg.Error`` once psycopg loads).
DB_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error,)


def is_postgres(location: Location) -> bool:
    return isinstance(location, str) and location.startswith(_SCHEMES)


def as_location(value: str | Path) -> Location:
    """A ``--db`` value or config entry as a location: URLs stay strings, the rest are paths."""
    return value if is_postgres(value) else Path(value)


def display(location: Location) -> str:
    """The location for messages: a URL without its password."""
    text = str(location)
    if not is_postgres(text):
        return text
    return re.sub(r"(://[^:/@]+):[^@/]*@", r"\1:***@", text)


def prepare_location(location: Location) -> None:
    """Create the directory of a SQLite file (nothing to do for a server)."""
    if not is_postgres(location):
        Path(location).parent.mkdir(parents=True, exist_ok=True)


def db_errors() -> tuple[type[Exception], ...]:
    """``DB_ERRORS``, with ``psycopg.Error`` once psycopg has been imported."""
    return DB_ERRORS


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    """What the stores need from a connection (``sqlite3.Connection`` has it all)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


class Row:
    """A PostgreSQL result row read like ``sqlite3.Row``: by index, by name, ``dict(row)``."""

    __slots__ = ("_names", "_values")

    def __init__(self, values: Sequence[Any], names: dict[str, int]) -> None:
        self._values = values
        self._names = names

    def __getitem__(self, key: int | str) -> Any:
        if isinstance(key, str):
            return self._values[self._names[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._names)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._names, self._values, strict=False))!r})"


def _row_factory(cursor: Any) -> Any:
    names = {d.name: i for i, d in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> Row:
        return Row(values, names)

    return make


_JSON_EXTRACT = re.compile(r"json_extract\(([\w.]+),\s*'\$\.([\w.]+)'\)")
_TRANSLATED: dict[str, str] = {}


def translate(sql: str) -> str:
    """SQLite-flavoured portable SQL -> psycopg's (see the module docstring). Cached."""
    done = _TRANSLATED.get(sql)
    if done is not None:
        return done
    text = _JSON_EXTRACT.sub(
        lambda m: f"({m.group(1)}::jsonb #>> '{{{m.group(2).replace('.', ',')}}}')", sql
    )
    out: list[str] = []
    quoted = False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        if ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    done = "".join(out)
    if len(_TRANSLATED) < 4096:
        _TRANSLATED[sql] = done
    return done


def pg_connect(url: str) -> psycopg.Connection[Any]:
    """An autocommit psycopg connection (transactions are explicit, as on SQLite)."""
    global DB_ERRORS
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - the postgres extra is not installed
        raise RuntimeError(
            "a postgresql:// ledger needs psycopg: pip install 'modelmix[postgres]'"
        ) from exc
    if psycopg.Error not in DB_ERRORS:
        DB_ERRORS = (*DB_ERRORS, psycopg.Error)
    return psycopg.connect(url, autocommit=True, connect_timeout=10)


class PgDatabase:
    """A PostgreSQL connection behind the ``Database`` shape (thread-safe: psycopg serialises
    the statements of one connection).

    Stores keep their connection for the life of the process, so a connection the server
    dropped (a restart, a failover) is opened again: the statement that found it broken fails
    (a read is retried once on the new connection), the next one runs on a new connection."""

    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self._closed = False
        self.conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        conn = pg_connect(self.url)
        conn.row_factory = _row_factory
        return conn

    def _live(self) -> psycopg.Connection[Any]:
        if self.conn.broken and not self._closed:
            self.conn = self._connect()
        return self.conn

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        conn = self._live()
        if sql == "BEGIN IMMEDIATE":
            conn.execute("BEGIN")
            return conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        query, params = translate(sql), tuple(parameters)
        try:
            return conn.execute(query, params)
        except db_errors():
            if not conn.broken or not query.lstrip()[:6].upper() == "SELECT":
                raise
            return self._live().execute(query, params)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any:
        cur = self._live().cursor()
        cur.executemany(translate(sql), [tuple(p) for p in parameters])
        return cur

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.conn.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self._closed = True
        self.conn.close()


def dialect(db: Database) -> str:
    """``sqlite`` or ``postgresql``."""
    return "postgresql" if isinstance(db, PgDatabase) else "sqlite"


def upsert_sql(
    table: str, columns: Sequence[str], key: Sequence[str], *, update: bool = True
) -> str:
    """``INSERT`` one row, replacing (``update``) or keeping (not) the row with the same
    ``key``: portable SQL (SQLite 3.24+ and PostgreSQL), unlike ``INSERT OR REPLACE``."""
    marks = ", ".join("?" for _ in columns)
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
    sql += f"ON CONFLICT ({', '.join(key)}) DO "
    rest = [c for c in columns if c not in key]
    if not update or not rest:
        return sql + "NOTHING"
    return sql + "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in rest)
