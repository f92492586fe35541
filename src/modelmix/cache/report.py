"""What the response cache saved, from the ledger: for ``modelmix report`` and the dashboard.

A hit's row has ``cost_usd`` 0 and ``saved_usd`` = what its answer cost when it was made
(``cache/hooks.py``); ``decision.cache.hit`` says ``exact`` or ``semantic``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from modelmix.ledger.queries import _read, _window

__all__ = ["cache_savings"]


def cache_savings(
    path: str | Path, since: float | None = None, until: float | None = None
) -> dict[str, Any]:
    """``{"hits", "exact", "semantic", "saved_usd"}`` over requests in ``[since, until)``."""
    where, params = _window(since, until)
    where = (where + " AND" if where else " WHERE") + " r.saved_usd IS NOT NULL"
    sql = (
        "SELECT json_extract(r.decision, '$.cache.hit') AS kind, r.saved_usd "
        "FROM requests r" + where
    )
    out: dict[str, Any] = {"hits": 0, "exact": 0, "semantic": 0, "saved_usd": Decimal(0)}
    with _read(path) as conn:
        for kind, saved in conn.execute(sql, params):
            out["hits"] += 1
            if kind in ("exact", "semantic"):
                out[kind] += 1
            out["saved_usd"] += Decimal(saved)
    return out
