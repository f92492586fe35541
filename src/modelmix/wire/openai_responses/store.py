"""Stored responses (``store: true``) in the ledger database.

One row per stored response: the ``response`` object as the client got it, and this turn's
conversation items (its input items, then its output items). ``previous_response_id`` rebuilds
a conversation by walking the chain of previous responses back to its start. A response is
visible only to the key that created it (or to anyone when it was created without a key).

The table has its own version (``responses_schema_version``), like the quality loop's tables,
so the ledger's schema and this one evolve apart. Writes are synchronous (the next request of a
conversation must find the previous one) and happen only on ``/v1/responses``.
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from typing import Any

import orjson

from modelmix.errors import GatewayError
from modelmix.ledger.schema import SchemaError, connect

__all__ = ["ResponseStore", "remember", "store_for"]

RESPONSES_SCHEMA_VERSION = 1
DDL = (
    "CREATE TABLE IF NOT EXISTS responses_schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS stored_responses (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    key_id TEXT,
    created_at REAL NOT NULL,
    previous_response_id TEXT,
    response TEXT NOT NULL,
    items TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS stored_responses_time ON stored_responses (created_at)",
)
#: How far back ``previous_response_id`` chains are followed (a loop guard, not a limit
#: a real conversation meets).
MAX_CHAIN = 10_000


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL:
            conn.execute(statement)
        row = conn.execute("SELECT MAX(version) FROM responses_schema_version").fetchone()
        if row[0] is not None and row[0] > RESPONSES_SCHEMA_VERSION:
            raise SchemaError(
                f"stored-responses schema version {row[0]} is newer than this modelmix "
                f"(knows up to {RESPONSES_SCHEMA_VERSION}); upgrade modelmix"
            )
        if row[0] is None:
            conn.execute(
                "INSERT INTO responses_schema_version (version) VALUES (?)",
                (RESPONSES_SCHEMA_VERSION,),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def not_found(response_id: str, param: str | None = None) -> GatewayError:
    return GatewayError(
        "not_found",
        f"Response with id '{response_id}' not found.",
        param=param,
        code="response_not_found" if param else None,
    )


class ResponseStore:
    """Stored responses in the database at ``path`` (one connection, used under a lock)."""

    def __init__(self, path: str) -> None:
        self._conn = connect(path, check_same_thread=False)
        self._lock = threading.Lock()
        _migrate(self._conn)

    def save(
        self,
        response: dict[str, Any],
        items: list[dict[str, Any]],
        *,
        request_id: str,
        key_id: str | None,
        previous: str | None,
    ) -> None:
        row = (
            response["id"],
            request_id,
            key_id,
            time.time(),
            previous,
            orjson.dumps(response).decode(),
            orjson.dumps(items).decode(),
        )
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO stored_responses (id, request_id, key_id, created_at, "
                "previous_response_id, response, items) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    def _row(self, response_id: str, key_id: str | None) -> tuple[Any, ...] | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT key_id, response, items, previous_response_id FROM stored_responses "
                "WHERE id = ?",
                (response_id,),
            ).fetchone()
        if row is None or (row[0] is not None and row[0] != key_id):
            return None
        return tuple(row)

    def get(self, response_id: str, key_id: str | None) -> dict[str, Any] | None:
        row = self._row(response_id, key_id)
        return None if row is None else orjson.loads(row[1])

    def delete(self, response_id: str, key_id: str | None) -> bool:
        if self._row(response_id, key_id) is None:
            return False
        with self._lock:
            self._conn.execute("DELETE FROM stored_responses WHERE id = ?", (response_id,))
        return True

    def conversation(self, response_id: str, key_id: str | None) -> list[dict[str, Any]]:
        """Every item of the conversation up to and including ``response_id``'s output.
        Raises ``GatewayError`` (404) when it, or a response it follows, is not stored."""
        turns: list[list[dict[str, Any]]] = []
        current: str | None = response_id
        while current is not None and len(turns) < MAX_CHAIN:
            row = self._row(current, key_id)
            if row is None:
                raise not_found(current, "previous_response_id")
            turns.append(orjson.loads(row[2]))
            current = row[3]
        return [item for turn in reversed(turns) for item in turn]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


_STORES: weakref.WeakKeyDictionary[Any, ResponseStore] = weakref.WeakKeyDictionary()
_STORES_LOCK = threading.Lock()


def store_for(gateway: Any) -> ResponseStore | None:
    """The store of a gateway that keeps a ledger (None without one), opened on first use."""
    if getattr(gateway, "ledger", None) is None:
        return None
    with _STORES_LOCK:
        store = _STORES.get(gateway)
        if store is None:
            store = _STORES[gateway] = ResponseStore(gateway.config.ledger_path)
            weakref.finalize(gateway, store.close)
        return store


def remember(native: Any, response: dict[str, Any]) -> None:
    """Store a finished response when the request asked for it (``store``, on by default)."""
    store: ResponseStore | None = native.store_ref
    if not native.store or store is None:
        return
    items = [*native.items, *response["output"]]
    store.save(
        response,
        items,
        request_id=response["id"].removeprefix("resp_"),
        key_id=native.key_id,
        previous=native.previous_response_id,
    )
