"""Stored responses of the Responses API (``store``, ``previous_response_id``, ``GET`` and
``DELETE /v1/responses/{id}``) in the ledger's database, SQLite or PostgreSQL.

``GET /v1/responses/{id}/input_items`` reads a response's input items from the same row.
``previous_response_id`` rebuilds a conversation by walking the chain of previous responses
back to its start. A response is visible only to the key that created it (or to anyone when it
was created without a key). Writes are synchronous (the next request of a conversation must
find the previous one) and happen only on ``/v1/responses``. The table:
``responses_schema.py``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson

from modelmix.errors import GatewayError
from modelmix.ledger.db import Database, Location, is_postgres, upsert_sql

__all__ = ["MAX_CHAIN", "ResponseStore", "not_found"]

#: How far back ``previous_response_id`` chains are followed (a loop guard, not a limit
#: a real conversation meets).
MAX_CHAIN = 10_000

_SAVE_SQL = upsert_sql(
    "stored_responses",
    ("id", "request_id", "key_id", "created_at", "previous_response_id", "response", "items"),
    ("id",),
)
#: The chain of previous responses, newest first (portable: SQLite and PostgreSQL).
_CHAIN_SQL = """WITH RECURSIVE chain (id, key_id, items, previous_response_id, depth) AS (
    SELECT id, key_id, items, previous_response_id, 0 FROM stored_responses WHERE id = ?
    UNION ALL
    SELECT s.id, s.key_id, s.items, s.previous_response_id, chain.depth + 1
    FROM stored_responses s JOIN chain ON s.id = chain.previous_response_id
    WHERE chain.depth + 1 < ?
)
SELECT id, key_id, items, previous_response_id FROM chain ORDER BY depth"""
_ROW_SQL = "SELECT key_id, response, items, previous_response_id FROM stored_responses WHERE id = ?"


def not_found(response_id: str, param: str | None = None) -> GatewayError:
    """OpenAI's 404 for a response id that is not stored (or not the caller's)."""
    return GatewayError(
        "not_found",
        f"Response with id '{response_id}' not found.",
        param=param,
        code="response_not_found" if param else None,
    )


def _open(location: Location) -> Database:
    if is_postgres(location):
        from modelmix.ledger.pg_schema import open_pg

        return open_pg(str(location))  # the migrations include this table's
    from modelmix.ledger.responses_schema import ensure_responses_schema
    from modelmix.ledger.schema import connect

    conn = connect(str(location), check_same_thread=False)
    try:
        ensure_responses_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


class ResponseStore:
    """Stored responses in the ledger at ``location`` (one connection, used under a lock)."""

    def __init__(self, location: Location) -> None:
        self._db = _open(location)
        self._lock = threading.Lock()

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
            self._db.execute(_SAVE_SQL, row)

    def _row(self, response_id: str, key_id: str | None) -> tuple[Any, ...] | None:
        with self._lock:
            row = self._db.execute(_ROW_SQL, (response_id,)).fetchone()
        if row is None or (row[0] is not None and row[0] != key_id):
            return None
        return tuple(row)

    def get(self, response_id: str, key_id: str | None) -> dict[str, Any] | None:
        row = self._row(response_id, key_id)
        return None if row is None else orjson.loads(row[1])

    def input_items(self, response_id: str, key_id: str | None) -> list[dict[str, Any]] | None:
        """The input items of a stored response, as sent (None: not stored, or not the
        caller's). A row's items are its input items followed by its output items."""
        row = self._row(response_id, key_id)
        if row is None:
            return None
        items: list[dict[str, Any]] = orjson.loads(row[2])
        outputs = len(orjson.loads(row[1]).get("output") or ())
        return items[: len(items) - outputs]

    def delete(self, response_id: str, key_id: str | None) -> bool:
        if self._row(response_id, key_id) is None:
            return False
        with self._lock:
            self._db.execute("DELETE FROM stored_responses WHERE id = ?", (response_id,))
        return True

    def conversation(self, response_id: str, key_id: str | None) -> list[dict[str, Any]]:
        """Every item of the conversation up to and including ``response_id``'s output, read
        in one query. Raises ``GatewayError`` (404) when it, or a response it follows, is not
        stored (or not the caller's)."""
        with self._lock:
            rows = self._db.execute(_CHAIN_SQL, (response_id, MAX_CHAIN)).fetchall()
        expected: str | None = response_id
        turns: list[list[dict[str, Any]]] = []
        for row in rows:  # newest first
            if row[1] is not None and row[1] != key_id:
                break
            turns.append(orjson.loads(row[2]))
            expected = row[3]
        else:
            if expected is None or len(turns) >= MAX_CHAIN:
                return [item for turn in reversed(turns) for item in turn]
        raise not_found(expected or response_id, "previous_response_id")

    def close(self) -> None:
        with self._lock:
            self._db.close()
