"""The PostgreSQL ledger: the same queue and writer thread as the SQLite one, writing by COPY.

Everything about ``record()`` (O(1), never blocks, never raises), batching, ``flush`` and
``close`` is ``SqliteLedger``'s (``ledger/sqlite.py``); only the connection and the insert
differ. A batch's requests and attempts go in with ``COPY ... FROM STDIN`` in one transaction
(far fewer round trips than row inserts). A lost connection is a transient error: the writer
reconnects and retries the batch (``_RETRY_DELAYS``); a batch refused because of one record (a
duplicate id) is written row by row, so only that record is lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from modelmix.ledger.db import Location, is_postgres, pg_connect
from modelmix.ledger.pg_schema import open_pg
from modelmix.ledger.schema import ATTEMPT_COLUMNS, REQUEST_COLUMNS
from modelmix.ledger.sqlite import SqliteLedger, _Rows, split_rows

__all__ = ["PostgresLedger", "open_writer_ledger"]

_COPY_REQUESTS = f"COPY requests ({', '.join(REQUEST_COLUMNS)}) FROM STDIN"
_COPY_ATTEMPTS = f"COPY attempts ({', '.join(ATTEMPT_COLUMNS)}) FROM STDIN"


class _Connection:
    """The writer's connection, opened again after the server dropped it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: Any = pg_connect(url)

    def get(self) -> Any:
        if self.conn.closed or self.conn.broken:
            self.conn = pg_connect(self.url)
        return self.conn

    def close(self) -> None:
        self.conn.close()


class PostgresLedger(SqliteLedger):
    """Request ledger in a PostgreSQL database, written by one background thread."""

    #: network round trips, not SQLite's CPU, bound a chunk: larger transactions
    chunk_rows = 256

    def __init__(self, url: str, *, batch_size: int = 512, flush_interval: float = 0.2) -> None:
        super().__init__(url, batch_size=batch_size, flush_interval=flush_interval)
        self.url = url
        import psycopg

        self.transient_errors = (psycopg.OperationalError,)

    def _open(self) -> _Connection:
        open_pg(self.url).close()  # schema checked (and migrated) once per process
        return _Connection(self.url)

    @staticmethod
    def _insert(conn: Any, batch: Iterable[_Rows]) -> None:
        requests, attempts = split_rows(batch)
        pg = conn.get()
        with pg.transaction(), pg.cursor() as cur:
            with cur.copy(_COPY_REQUESTS) as copy:
                for row in requests:
                    copy.write_row(row)
            if attempts:
                with cur.copy(_COPY_ATTEMPTS) as copy:
                    for row in attempts:
                        copy.write_row(row)


def open_writer_ledger(
    location: Location,
    *,
    batch_size: int = 512,
    flush_interval: float = 0.2,
    synchronous: bool = False,
) -> SqliteLedger:
    """The ledger writer for ``location``: SQLite file or ``postgresql://`` URL.

    ``synchronous`` (SQLite only, ``ledger.synchronous``): commit each request before
    ``record()`` returns, so a SIGKILL loses nothing answered (``ledger/sync.py``)."""
    if is_postgres(location):
        if synchronous:
            raise ValueError("ledger.synchronous is for an SQLite ledger, not a PostgreSQL one")
        return PostgresLedger(str(location), batch_size=batch_size, flush_interval=flush_interval)
    if synchronous:
        from modelmix.ledger.sync import SyncSqliteLedger

        return SyncSqliteLedger(location, batch_size=batch_size, flush_interval=flush_interval)
    return SqliteLedger(location, batch_size=batch_size, flush_interval=flush_interval)
