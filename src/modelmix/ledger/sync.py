"""The SIGKILL-safe ledger (``ledger.synchronous: true``; issue 14, finding 9).

The default ledger commits in batches every ``flush_interval``: a graceful stop loses nothing,
but a SIGKILL (or a crash) loses what was recorded since the last commit (about 2 % of rows
under load). This one commits each request's rows in the calling thread before ``record()``
returns, and the gateway records a request before its answer (or a stream's end) goes out: a
row the client could see an answer for is already in the file, so a SIGKILL loses nothing
answered. The WAL commit lands in the OS page cache (``synchronous=OFF`` on this connection:
no fsync per request), which survives the process being killed; it costs the event loop one
SQLite transaction per request (``benchmarks/ledger_sync.py`` measures the throughput cost).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from modelmix.ledger.records import RequestRecord
from modelmix.ledger.schema import connect
from modelmix.ledger.sqlite import SqliteLedger, _Rows

__all__ = ["SyncSqliteLedger"]

log = logging.getLogger("modelmix.ledger")


class SyncSqliteLedger(SqliteLedger):
    """``SqliteLedger`` whose ``record()`` commits before it returns."""

    def __init__(
        self, path: str | Path, *, batch_size: int = 512, flush_interval: float = 0.2
    ) -> None:
        super().__init__(path, batch_size=batch_size, flush_interval=flush_interval)
        self._sync_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def start(self) -> None:
        super().start()  # schema, and the writer thread (for records before start / leftovers)
        with self._sync_lock:
            if self._conn is None:
                self._conn = connect(str(self.path), check_same_thread=False)
                # A commit must reach the OS (which outlives a killed process), not the disk:
                # no fsync per request; power-loss durability stays the checkpoint's, as before.
                self._conn.execute("PRAGMA synchronous = OFF")

    def record(self, rec: RequestRecord) -> None:
        """Commit ``rec``'s rows now (queued for the writer thread if not started yet)."""
        conn = self._conn
        if conn is None or self._closed:
            super().record(rec)
            return
        try:
            rows = _Rows(rec)
        except Exception:
            self._dropped += 1
            log.exception("ledger: request %s NOT recorded", getattr(rec, "id", "?"))
            return
        with self._sync_lock:
            self._write(conn, [rows])

    def close(self) -> None:
        with self._sync_lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        super().close()
