"""Read ledger rows straight from SQLite (what a person inspecting the file would see)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def request_row(db: Path, request_id: str) -> dict[str, Any]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        row = conn.execute("SELECT * FROM requests WHERE id = ?", (request_id,)).fetchone()
        assert row is not None, f"no ledger row for {request_id}"
        return dict(row)


def attempt_rows(db: Path, request_id: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT * FROM attempts WHERE request_id = ? ORDER BY seq", (request_id,)
        ).fetchall()
        return [dict(r) for r in rows]
