"""Open a ledger location with its schema brought up to date, on either backend.

Above ``db.py`` (the connection shape), ``schema.py`` / ``quality_schema.py`` (SQLite tables) and
``pg_schema.py`` (the same tables on PostgreSQL, built from the SQLite statements), because it
uses all of them; the stores and the CLI open their connections here.
"""

from __future__ import annotations

import sqlite3

from modelmix.ledger.db import Database, Location, is_postgres
from modelmix.ledger.pg_schema import open_pg
from modelmix.ledger.quality_schema import ensure_quality_schema
from modelmix.ledger.responses_schema import ensure_responses_schema
from modelmix.ledger.schema import connect, ensure_schema

__all__ = ["open_ledger", "open_quality_db"]


def open_ledger(location: Location, *, check_same_thread: bool = True) -> Database:
    """A read-write connection to the ledger at ``location``, its schema brought up to date.
    SQLite: the ledger's tables (``schema.py``); PostgreSQL: the ledger's and the quality
    tables (``pg_schema.py``)."""
    if is_postgres(location):
        return open_pg(str(location))
    conn = connect(str(location), check_same_thread=check_same_thread)
    try:
        ensure_schema(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def open_quality_db(path: Location, *, check_same_thread: bool = True) -> Database:
    """A connection to the ledger database with the ledger's, the quality and the
    stored-responses tables (a SQLite path or a ``postgresql://`` URL: ``ledger/db.py``)."""
    if is_postgres(path):
        return open_pg(str(path))
    conn = connect(str(path), check_same_thread=check_same_thread)
    try:
        ensure_schema(conn)
        ensure_quality_schema(conn)
        ensure_responses_schema(conn)  # the Responses API's stored responses (issue 12)
    except BaseException:
        conn.close()
        raise
    conn.row_factory = sqlite3.Row
    return conn
