"""The SQLite ledger: ``record()`` on the hot path, one background thread writing batches.

``record()`` only appends the record to an unbounded in-memory queue (``queue.SimpleQueue``:
O(1), thread-safe, never blocks). A single writer thread drains the queue in batches of up to
``batch_size`` requests (with their attempts); a record waits at most about ``flush_interval``
seconds before it is committed. A batch is committed in transactions of ``_CHUNK_ROWS``
requests with a short pause between them, and the writer runs at a lower OS priority, so it
never holds a core for milliseconds at a stretch (a server pinned to one core shares it with
this thread: long bursts showed as p99 latency). ``flush()`` and ``close()`` wait until
everything recorded before them is committed, so a graceful stop loses nothing.

Once passed to ``record()``, a ``RequestRecord`` belongs to the ledger: do not mutate it.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from modelmix.ledger.opening import open_ledger
from modelmix.ledger.records import AttemptRecord, RequestRecord
from modelmix.ledger.schema import ATTEMPT_COLUMNS, REQUEST_COLUMNS

__all__ = ["SqliteLedger"]

#: Requests per transaction, and the writer's pause between two transactions of one batch:
#: about 1 ms of SQLite work, then 0.5 ms for the server (capacity: ~20k requests/s).
_CHUNK_ROWS = 32
_CHUNK_PAUSE = 0.0005

log = logging.getLogger("modelmix.ledger")

_INSERT_REQUEST = (
    f"INSERT INTO requests ({', '.join(REQUEST_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in REQUEST_COLUMNS)})"
)
_INSERT_ATTEMPT = (
    f"INSERT INTO attempts ({', '.join(ATTEMPT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ATTEMPT_COLUMNS)})"
)


#: Pauses between attempts at a batch when the database itself fails; None = give up.
_RETRY_DELAYS: tuple[float | None, ...] = (0.5, 2.0, None)


class _Flush:
    """Queue marker: set ``done`` once everything queued before it is committed."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Stop(_Flush):
    """Queue marker: commit everything before it, then end the writer thread."""

    __slots__ = ()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


def _dumps(value: Any) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def _money(value: Decimal | None) -> str | None:
    """Exact fixed-point text (never exponent notation), e.g. ``0.000000123``."""
    return None if value is None else format(value, "f")


def request_row(rec: RequestRecord) -> tuple[Any, ...]:
    """The ``requests`` row for ``rec`` (column order: ``REQUEST_COLUMNS``)."""
    unpriced = rec.unpriced
    return (
        rec.id,
        rec.started_at,
        rec.api,
        rec.requested_model,
        rec.route,
        int(rec.stream),
        rec.key_id,
        rec.config_hash,
        _dumps(rec.decision),
        rec.status,
        rec.http_status,
        rec.error,
        rec.final_model,
        rec.latency_ms,
        rec.ttft_ms,
        rec.prompt_tokens,
        rec.completion_tokens,
        rec.cached_tokens,
        rec.reasoning_tokens,
        format(rec.cost_usd, "f"),
        int(unpriced),
        len(rec.attempts),
        _dumps(rec.metadata),
        rec.team,
        _dumps(list(rec.tags)),
        "unknown" if unpriced else rec.cost_confidence,
        rec.decision.get("policy_version", rec.policy_version),
        _money(rec.saved_usd),
    )


def attempt_row(a: AttemptRecord) -> tuple[Any, ...]:
    """The ``attempts`` row for ``a`` (column order: ``ATTEMPT_COLUMNS``)."""
    price_source = a.price_source
    if a.cost_usd is None and price_source is None:
        price_source = "unknown"
    return (
        a.request_id,
        a.seq,
        a.model,
        a.deployment,
        a.provider,
        a.upstream_model,
        a.started_at,
        a.latency_ms,
        a.ttft_ms,
        a.status,
        a.http_status,
        a.error_kind,
        a.error,
        a.prompt_tokens,
        a.completion_tokens,
        a.cached_tokens,
        a.cache_write_tokens,
        a.reasoning_tokens,
        _money(a.cost_usd),
        price_source,
    )


def _lower_priority() -> None:
    """Run the calling thread (the writer) at a lower OS priority: when a request wakes the
    event loop's thread, the scheduler hands it the core at once instead of letting the
    writer finish its time slice. Linux sets a priority per thread (``setpriority`` on the
    thread id); elsewhere, or when not allowed, nothing changes."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(os.getpriority(os.PRIO_PROCESS, tid) + 10, 19))
    except (AttributeError, OSError):  # pragma: no cover - platform without it
        pass


class _Rows:
    """One request's rows, built when it is recorded (so the writer thread, which must hold
    the GIL for Python work, spends its time in SQLite, which releases it)."""

    __slots__ = ("attempts", "id", "request")

    def __init__(self, rec: RequestRecord) -> None:
        self.id = rec.id
        self.request = request_row(rec)
        self.attempts = [attempt_row(a) for a in rec.attempts]


def split_rows(batch: Iterable[_Rows]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """A batch's ``requests`` rows and ``attempts`` rows."""
    requests: list[tuple[Any, ...]] = []
    attempts: list[tuple[Any, ...]] = []
    for rows in batch:
        requests.append(rows.request)
        attempts.extend(rows.attempts)
    return requests, attempts


class SqliteLedger:
    """Request ledger in one SQLite file (WAL), written by one background thread."""

    def __init__(
        self, path: str | Path, *, batch_size: int = 512, flush_interval: float = 0.2
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.path = Path(path)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._queue: queue.SimpleQueue[_Rows | _Flush] = queue.SimpleQueue()
        #: Set when a marker is queued: cuts the writer's wait for more records short.
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._lifecycle = threading.Lock()
        self._closed = False
        self._dropped = 0
        self._written = 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Create the directory and schema, then start the writer thread. Raises on a bad path
        or an incompatible database, so problems show at start-up."""
        with self._lifecycle:
            if self._closed:
                raise RuntimeError("ledger is closed")
            self._start_locked()

    def _start_locked(self) -> None:
        if self._thread is not None:
            return
        conn = self._open()
        self._thread = threading.Thread(
            target=self._run, args=(conn,), name="modelmix-ledger-writer", daemon=True
        )
        self._thread.start()
        atexit.register(self.close)

    def record(self, rec: RequestRecord) -> None:
        """Queue ``rec`` for writing: its rows are built now, the writer thread commits them.
        Thread-safe, never blocks on disk, never raises."""
        try:
            if self._closed:
                self._dropped += 1
                log.error("ledger is closed; request %s NOT recorded", rec.id)
                return
            self._queue.put(_Rows(rec))
        except Exception:  # a record that cannot be turned into rows: say so, never raise
            self._dropped += 1
            log.exception("ledger: request %s NOT recorded", getattr(rec, "id", "?"))

    def flush(self) -> None:
        """Block until everything recorded so far is committed (a no-op before ``start()``)."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        marker = _Flush()
        self._queue.put(marker)
        self._wake.set()
        while not marker.done.wait(0.5):
            if not thread.is_alive():  # the writer died: nothing will set the marker
                return

    def close(self) -> None:
        """Commit everything recorded, stop the writer thread, close the database.

        Idempotent. A ledger closed without ever being started starts first if records are
        waiting, so that nothing recorded is lost."""
        with self._lifecycle:
            if self._closed:
                return
            if self._thread is None and not self._queue.empty():
                self._start_locked()
            self._closed = True
            thread = self._thread
        atexit.unregister(self.close)
        if thread is None:
            return
        self._queue.put(_Stop())
        self._wake.set()
        thread.join()
        # a record() racing with close() may have queued behind the stop marker
        leftovers: list[_Rows] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Flush):
                item.done.set()
            else:
                leftovers.append(item)
        if leftovers:
            conn = self._open()
            try:
                self._write(conn, leftovers)
            finally:
                conn.close()

    def __enter__(self) -> SqliteLedger:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def alive(self) -> bool:
        """True while the writer thread runs (started and not closed)."""
        thread = self._thread
        return thread is not None and thread.is_alive() and not self._closed

    @property
    def dropped(self) -> int:
        """Records lost to write errors (each is logged at ERROR level). Should stay 0."""
        return self._dropped

    @property
    def written(self) -> int:
        """Requests committed so far."""
        return self._written

    # -- writer thread -----------------------------------------------------------------

    #: Requests per transaction, and errors worth retrying a whole batch for (the database
    #: itself failing, not one bad record). A backend (``ledger/postgres.py``) overrides
    #: these with ``_open`` and ``_insert``.
    chunk_rows = _CHUNK_ROWS
    transient_errors: tuple[type[Exception], ...] = (sqlite3.OperationalError,)

    def _open(self) -> Any:
        """A connection for the writer, with the schema up to date."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return open_ledger(self.path, check_same_thread=False)

    def _run(self, conn: Any) -> None:
        _lower_priority()
        try:
            while True:
                batch, markers = self._collect()
                step = self.chunk_rows
                for start in range(0, len(batch), step):
                    if start:
                        time.sleep(_CHUNK_PAUSE)  # let the event loop's thread have the core
                    self._write(conn, batch[start : start + step])
                stop = False
                for marker in markers:
                    marker.done.set()
                    stop = stop or isinstance(marker, _Stop)
                if stop:
                    return
        except BaseException:  # pragma: no cover - defensive: never die silently
            log.exception("ledger writer thread crashed; further records are lost")
            raise
        finally:
            conn.close()

    def _collect(self) -> tuple[list[_Rows], list[_Flush]]:
        """Wait for work; return up to ``batch_size`` records and any markers seen.

        Returns as soon as the batch is full or a marker arrives, otherwise once the first
        record has waited ``flush_interval``. Between the first record and then, the thread
        sleeps on ``_wake`` (set by markers only) rather than on the queue, so a busy server's
        ``record()`` calls do not wake it once per request."""
        q = self._queue
        batch: list[_Rows] = []
        markers: list[_Flush] = []
        item: _Rows | _Flush | None = q.get()
        deadline = time.monotonic() + self.flush_interval
        while True:
            while item is not None:
                if isinstance(item, _Flush):
                    markers.append(item)
                    if isinstance(item, _Stop):
                        break
                else:
                    batch.append(item)
                if len(batch) >= self.batch_size:
                    break
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    item = None
            # records queued *after* a marker may ride along: committing early is harmless
            if markers or len(batch) >= self.batch_size:
                return batch, markers
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return batch, markers
            self._wake.wait(remaining)
            self._wake.clear()
            try:
                item = q.get_nowait()
            except queue.Empty:
                item = None

    def _write(self, conn: Any, batch: list[_Rows]) -> None:
        """Write one batch. A database-level failure (locked past the busy timeout, disk
        full...) retries the whole batch a few times; a failure due to one bad record (a
        duplicate id...) falls back to row by row, so only that record is lost."""
        for delay in _RETRY_DELAYS:
            try:
                self._insert(conn, batch)
                self._written += len(batch)
                return
            except self.transient_errors as exc:
                if delay is None:
                    self._dropped += len(batch)
                    log.error(
                        "ledger: %d requests NOT recorded (%s): %s",
                        len(batch),
                        exc,
                        ", ".join(rows.id for rows in batch),
                    )
                    return
                log.warning("ledger write failed (%s); retrying in %.1fs", exc, delay)
                time.sleep(delay)
            except Exception as exc:
                log.warning("ledger batch of %d failed (%s); retrying one by one", len(batch), exc)
                break
        for rows in batch:
            try:
                self._insert(conn, (rows,))
                self._written += 1
            except Exception as exc:
                self._dropped += 1
                log.error("ledger: request %s NOT recorded: %s", rows.id, exc)

    @staticmethod
    def _insert(conn: Any, batch: Iterable[_Rows]) -> None:
        requests, attempts = split_rows(batch)
        conn.execute("BEGIN")
        try:
            conn.executemany(_INSERT_REQUEST, requests)
            if attempts:
                conn.executemany(_INSERT_ATTEMPT, attempts)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
