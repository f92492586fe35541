"""The stored-responses table of the Responses API (``/v1/responses``), in the ledger's
database, with its own version.

One row per stored response (``store: true``): the ``response`` object as the client got it
and that turn's conversation items (its input items, then its output items), as JSON text.
Like the quality tables, it sits beside the ledger's tables but is versioned on its own
(``responses_schema_version``). SQLite: ``ensure_responses_schema`` here; PostgreSQL: the same
statements as numbered migrations in ``pg_schema.py``. The store is ``stored_responses.py``.
"""

from __future__ import annotations

import sqlite3

from modelmix.ledger.schema import SchemaError

__all__ = ["DDL", "RESPONSES_SCHEMA_VERSION", "ensure_responses_schema"]

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


def ensure_responses_schema(conn: sqlite3.Connection) -> None:
    """Create the table if missing (SQLite); refuse a database from a newer modelmix."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in DDL:
            conn.execute(statement)
        version = conn.execute("SELECT MAX(version) FROM responses_schema_version").fetchone()[0]
        if version is not None and version > RESPONSES_SCHEMA_VERSION:
            raise SchemaError(
                f"stored-responses schema version {version} is newer than this modelmix "
                f"(knows up to {RESPONSES_SCHEMA_VERSION}); upgrade modelmix"
            )
        if version is None:
            conn.execute(
                "INSERT INTO responses_schema_version (version) VALUES (?)",
                (RESPONSES_SCHEMA_VERSION,),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
