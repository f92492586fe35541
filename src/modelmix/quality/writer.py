"""The quality loop's writes, off the event loop: one thread committing batches.

Like the ledger's writer (``ledger/sqlite.py``): ``write`` only queues a statement (O(1),
never blocks, never raises), a background thread commits what is queued in one transaction
at most every ``flush_interval`` seconds, and ``flush`` / ``close`` wait until everything
queued before them is committed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from typing import Any

from modelmix.ledger.db import Database, Location, db_errors
from modelmix.ledger.opening import open_quality_db

log = logging.getLogger("modelmix.quality")

_Statement = tuple[str, Sequence[Any]]


class _Marker:
    __slots__ = ("done", "stop")

    def __init__(self, stop: bool = False) -> None:
        self.done = threading.Event()
        self.stop = stop


class BatchWriter:
    def __init__(self, path: Location, flush_interval: float = 0.1, batch_size: int = 512):
        self.path = path
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self._queue: queue.SimpleQueue[_Statement | _Marker] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        if self._thread is not None:
            return
        conn = open_quality_db(self.path, check_same_thread=False)
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="modelmix-quality-writer", daemon=True
        )
        self._thread.start()

    def write(self, sql: str, params: Sequence[Any]) -> None:
        if self._closed:
            self.dropped += 1
            return
        self._queue.put((sql, params))

    def flush(self) -> None:
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        marker = _Marker()
        self._queue.put(marker)
        while not marker.done.wait(0.5):
            if not thread.is_alive():
                return

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        thread = self._thread
        if thread is None:
            return
        marker = _Marker(stop=True)
        self._queue.put(marker)
        thread.join()

    def _run(self, conn: Database) -> None:
        try:
            while True:
                batch: list[_Statement] = []
                markers: list[_Marker] = []
                item = self._queue.get()
                deadline = time.monotonic() + self.flush_interval
                while True:
                    if isinstance(item, _Marker):
                        markers.append(item)
                        break
                    batch.append(item)
                    if len(batch) >= self.batch_size:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        item = self._queue.get(timeout=remaining)
                    except queue.Empty:
                        break
                if batch:
                    self._commit(conn, batch)
                for marker in markers:
                    marker.done.set()
                if any(m.stop for m in markers):
                    return
        finally:
            conn.close()

    def _commit(self, conn: Database, batch: list[_Statement]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            for sql, params in batch:
                conn.execute(sql, params)
            conn.execute("COMMIT")
            self.written += len(batch)
            return
        except db_errors() as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            log.warning("quality writes failed as a batch (%s); retrying one by one", exc)
        for sql, params in batch:
            try:
                conn.execute(sql, params)
                self.written += 1
            except db_errors() as exc:
                self.dropped += 1
                log.error("quality write dropped: %s", exc)
