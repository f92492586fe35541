"""Read ledger rows straight from the database (what a person inspecting it would see): the
SQLite file or the PostgreSQL database the gateway writes."""

from __future__ import annotations

from typing import Any

from modelmix.ledger.db import Location
from modelmix.ledger.opening import open_ledger


def request_row(db: Location, request_id: str) -> dict[str, Any]:
    conn = open_ledger(db)
    try:
        cur = conn.execute("SELECT * FROM requests WHERE id = ?", (request_id,))
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
        assert row is not None, f"no ledger row for {request_id}"
        return dict(zip(names, row, strict=True))
    finally:
        conn.close()


def attempt_rows(db: Location, request_id: str) -> list[dict[str, Any]]:
    conn = open_ledger(db)
    try:
        cur = conn.execute(
            "SELECT * FROM attempts WHERE request_id = ? ORDER BY seq", (request_id,)
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        conn.close()
