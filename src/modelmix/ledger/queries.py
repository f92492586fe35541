"""Read-only queries over the ledger, for the CLI and the dashboard.

Each function opens its own read-only connection, so it is safe while a gateway writes to the
same file (WAL lets readers and the writer run side by side). Money comes back as ``Decimal``,
summed in Python so totals are exact; JSON columns come back parsed.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import orjson

__all__ = ["GroupBy", "LedgerNotFound", "get_request", "recent_requests", "spend_report"]

GroupBy = Literal["model", "route", "key", "day"]


class LedgerNotFound(FileNotFoundError):
    """There is no ledger database at the given path."""


@contextmanager
def _read(path: str | Path) -> Iterator[sqlite3.Connection]:
    p = Path(path)
    if not p.is_file():
        raise LedgerNotFound(f"no ledger at {p}")
    conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        yield conn
    finally:
        conn.close()


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _request_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["stream"] = bool(d["stream"])
    d["unpriced"] = bool(d["unpriced"])
    d["decision"] = orjson.loads(d["decision"])
    d["metadata"] = orjson.loads(d["metadata"])
    d["cost_usd"] = Decimal(d["cost_usd"])
    return d


def _attempt_dict(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["cost_usd"] = _dec(d["cost_usd"])
    return d


def _attach_attempts(conn: sqlite3.Connection, requests: list[dict[str, Any]]) -> None:
    if not requests:
        return
    by_id = {r["id"]: r for r in requests}
    for r in requests:
        r["attempts"] = []
    ids = list(by_id)
    for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        rows = conn.execute(
            f"SELECT * FROM attempts WHERE request_id IN ({', '.join('?' for _ in chunk)}) "
            "ORDER BY request_id, seq",
            chunk,
        ).fetchall()
        for row in rows:
            by_id[row["request_id"]]["attempts"].append(_attempt_dict(row))


def recent_requests(
    path: str | Path, limit: int = 20, route: str | None = None, model: str | None = None
) -> list[dict[str, Any]]:
    """The latest requests, newest first, each with its ``attempts`` (in order).

    ``route`` filters on the route name; ``model`` matches the model the client asked for or
    the model that answered."""
    where: list[str] = []
    params: list[Any] = []
    if route is not None:
        where.append("route = ?")
        params.append(route)
    if model is not None:
        where.append("(final_model = ? OR requested_model = ?)")
        params += [model, model]
    sql = "SELECT * FROM requests"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
    params.append(limit)
    with _read(path) as conn:
        requests = [_request_dict(r) for r in conn.execute(sql, params).fetchall()]
        _attach_attempts(conn, requests)
    return requests


def get_request(path: str | Path, id: str) -> dict[str, Any] | None:
    """One request with its attempts, or None."""
    with _read(path) as conn:
        row = conn.execute("SELECT * FROM requests WHERE id = ?", (id,)).fetchone()
        if row is None:
            return None
        request = _request_dict(row)
        _attach_attempts(conn, [request])
    return request


def _percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


_GROUP_SQL: dict[str, str] = {
    "model": "COALESCE(r.final_model, '(none)')",
    "route": "COALESCE(r.route, '(no route)')",
    "key": "COALESCE(r.key_id, '(no key)')",
    "day": "r.started_at",  # bucketed in Python: UTC calendar day
}


def spend_report(
    path: str | Path, since: float | None = None, group_by: GroupBy = "model"
) -> list[dict[str, Any]]:
    """Requests, errors, tokens, cost and latency per group, since ``since`` (unix seconds).

    Groups: ``model`` = the model that answered (``(none)`` when every attempt failed),
    ``route``, ``key`` (the key id; rows also carry the key's ``name``), ``day`` (UTC,
    ``YYYY-MM-DD``).
    ``cost_usd`` is an exact ``Decimal``; ``unpriced`` counts requests where some attempt
    used tokens at an unknown price (their cost is a lower bound). Sorted by cost, highest
    first; ``day`` groups are sorted by date.
    """
    if group_by not in _GROUP_SQL:
        raise ValueError(f"group_by must be one of {', '.join(_GROUP_SQL)}")
    label = "k.name" if group_by == "key" else "NULL"
    sql = (
        f"SELECT {_GROUP_SQL[group_by]} AS grp, r.status, r.prompt_tokens, "
        "r.completion_tokens, r.cached_tokens, r.reasoning_tokens, r.cost_usd, r.unpriced, "
        f"r.latency_ms, {label} AS label FROM requests r"
    )
    if group_by == "key":
        sql += " LEFT JOIN api_keys k ON k.id = r.key_id"
    params: list[Any] = []
    if since is not None:
        sql += " WHERE r.started_at >= ?"
        params.append(since)

    groups: dict[str, dict[str, Any]] = {}
    latencies: dict[str, list[float]] = {}
    with _read(path) as conn:
        for grp, status, pt, ct, cached, reasoning, cost, unpriced, latency, label in conn.execute(
            sql, params
        ):
            key = (
                datetime.fromtimestamp(grp, tz=UTC).strftime("%Y-%m-%d")
                if group_by == "day"
                else str(grp)
            )
            g = groups.get(key)
            if g is None:
                g = groups[key] = {
                    "group": key,
                    "requests": 0,
                    "errors": 0,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "cached_tokens": 0,
                    "reasoning_tokens": 0,
                    "cost_usd": Decimal(0),
                    "unpriced": 0,
                }
                if group_by == "key":
                    g["name"] = label
                latencies[key] = []
            g["requests"] += 1
            if status != "ok":
                g["errors"] += 1
            g["prompt_tokens"] += pt
            g["completion_tokens"] += ct
            g["cached_tokens"] += cached
            g["reasoning_tokens"] += reasoning
            g["cost_usd"] += Decimal(cost)
            g["unpriced"] += unpriced
            if latency is not None:
                latencies[key].append(latency)

    for key, g in groups.items():
        lat = sorted(latencies[key])
        g["total_tokens"] = g["prompt_tokens"] + g["completion_tokens"]
        g["avg_latency_ms"] = sum(lat) / len(lat) if lat else None
        g["p50_latency_ms"] = _percentile(lat, 0.50)
        g["p95_latency_ms"] = _percentile(lat, 0.95)

    rows = list(groups.values())
    if group_by == "day":
        rows.sort(key=lambda g: g["group"])
    else:
        rows.sort(key=lambda g: (-g["cost_usd"], -g["requests"], g["group"]))
    return rows
