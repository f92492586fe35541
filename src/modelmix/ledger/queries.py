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
from typing import Any, Literal, get_args

import orjson

from modelmix.ledger.db import Location, is_postgres
from modelmix.ledger.schema import SCHEMA_VERSION, connect, ensure_schema, schema_version

__all__ = [
    "GROUP_BYS",
    "GroupBy",
    "LedgerNotFound",
    "answered_usage",
    "get_request",
    "recent_requests",
    "routing_mix",
    "spend_report",
    "timeseries",
    "totals",
]

GroupBy = Literal["model", "route", "key", "team", "tag", "day", "hour", "confidence"]
GROUP_BYS: tuple[str, ...] = get_args(GroupBy)


class LedgerNotFound(FileNotFoundError):
    """There is no ledger database at the given path."""


_CHECKED: set[Path] = set()


def _migrate_if_old(p: Path) -> None:
    """Bring a ledger written by an older modelmix up to this schema (adding a column is
    instant in SQLite), so the queries below can name every column. Once per file."""
    resolved = p.resolve()
    if resolved in _CHECKED:
        return
    conn = sqlite3.connect(f"{resolved.as_uri()}?mode=ro", uri=True)
    try:
        version = schema_version(conn)
    finally:
        conn.close()
    if version is not None and version < SCHEMA_VERSION:
        rw = connect(str(resolved))
        try:
            ensure_schema(rw)
        finally:
            rw.close()
    _CHECKED.add(resolved)


@contextmanager
def _read(path: Location) -> Iterator[Any]:
    if is_postgres(path):
        from modelmix.ledger.pg_schema import reading

        with reading(str(path)) as db:
            yield db
        return
    p = Path(path)
    if not p.is_file():
        raise LedgerNotFound(f"no ledger at {p}")
    _migrate_if_old(p)
    conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        yield conn
    finally:
        conn.close()


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _request_dict(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["stream"] = bool(d["stream"])
    d["unpriced"] = bool(d["unpriced"])
    d["decision"] = orjson.loads(d["decision"])
    d["metadata"] = orjson.loads(d["metadata"])
    d["cost_usd"] = Decimal(d["cost_usd"])
    return d


def _attempt_dict(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["cost_usd"] = _dec(d["cost_usd"])
    return d


def _attach_attempts(conn: Any, requests: list[dict[str, Any]]) -> None:
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
    path: Location,
    limit: int = 20,
    route: str | None = None,
    model: str | None = None,
    failed: bool = False,
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
    if failed:  # issue 12: modelmix logs --failed
        where.append("status != 'ok'")
    sql = "SELECT * FROM requests"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY started_at DESC, id DESC LIMIT ?"
    params.append(limit)
    with _read(path) as conn:
        requests = [_request_dict(r) for r in conn.execute(sql, params).fetchall()]
        _attach_attempts(conn, requests)
    return requests


def get_request(path: Location, id: str) -> dict[str, Any] | None:
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


#: 1 when the request was answered by another model than the first one tried because that one
#: failed (the same definition as the ``modelmix_fallbacks_total`` metric: a cascade's accepted
#: voter or its escalation is not a fallback).
_FALLBACK_SQL = """CASE WHEN r.final_model IS NOT NULL AND EXISTS (
    SELECT 1 FROM attempts a0
    WHERE a0.request_id = r.id AND a0.seq = 0 AND a0.model != r.final_model
    AND NOT EXISTS (
        SELECT 1 FROM attempts a1
        WHERE a1.request_id = r.id AND a1.model = a0.model AND a1.status = 'ok'
    )
) THEN 1 ELSE 0 END"""

_SCAN_SQL = f"""SELECT r.id, r.started_at, r.route, r.key_id, k.name AS key_name, r.team, r.tags,
    r.final_model, r.status, r.prompt_tokens, r.completion_tokens, r.cached_tokens,
    r.reasoning_tokens, r.cost_usd, r.unpriced, r.cost_confidence, r.latency_ms, r.ttft_ms,
    {_FALLBACK_SQL} AS fallback,
    json_extract(r.decision, '$.strategy') AS strategy,
    json_extract(r.decision, '$.escalated') AS escalated
FROM requests r LEFT JOIN api_keys k ON k.id = r.key_id"""


def _window(since: float | None, until: float | None) -> tuple[str, list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if since is not None:
        where.append("r.started_at >= ?")
        params.append(since)
    if until is not None:
        where.append("r.started_at < ?")
        params.append(until)
    return (" WHERE " + " AND ".join(where) if where else ""), params


def _scan(conn: Any, since: float | None, until: float | None) -> Iterator[Any]:
    where, params = _window(since, until)
    yield from conn.execute(_SCAN_SQL + where + " ORDER BY r.started_at, r.id", params)


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d")


def _hour(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:00")


def _tags(text: str | None) -> list[str]:
    if not text:
        return []
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return []
    return [str(t) for t in value] if isinstance(value, list) else []


def _group_keys(row: Any, group_by: str) -> list[str]:
    """The group(s) a request counts in: one, except for tags (one per tag)."""
    match group_by:
        case "model":
            return [row["final_model"] or "(none)"]
        case "route":
            return [row["route"] or "(no route)"]
        case "key":
            return [row["key_id"] or "(no key)"]
        case "team":
            return [row["team"] or "(no team)"]
        case "tag":
            return _tags(row["tags"]) or ["(untagged)"]
        case "day":
            return [_day(row["started_at"])]
        case "hour":
            return [_hour(row["started_at"])]
        case "confidence":
            return [row["cost_confidence"] or "exact"]
        case "total":
            return ["total"]
    raise ValueError(f"group_by must be one of {', '.join(GROUP_BYS)}")


class _Agg:
    """Running totals for one group of requests."""

    __slots__ = (
        "cached",
        "cascades",
        "completion",
        "cost",
        "errors",
        "escalations",
        "estimated",
        "fallbacks",
        "latencies",
        "name",
        "prompt",
        "reasoning",
        "requests",
        "ttfts",
        "unpriced",
    )

    def __init__(self) -> None:
        self.name: str | None = None
        self.requests = self.errors = self.unpriced = self.estimated = 0
        self.fallbacks = self.escalations = self.cascades = 0
        self.prompt = self.completion = self.cached = self.reasoning = 0
        self.cost = Decimal(0)
        self.latencies: list[float] = []
        self.ttfts: list[float] = []

    def add(self, row: Any) -> None:
        self.requests += 1
        if row["status"] != "ok":
            self.errors += 1
        self.prompt += row["prompt_tokens"]
        self.completion += row["completion_tokens"]
        self.cached += row["cached_tokens"]
        self.reasoning += row["reasoning_tokens"]
        self.cost += Decimal(row["cost_usd"])
        self.unpriced += row["unpriced"]
        if row["cost_confidence"] == "estimated":
            self.estimated += 1
        self.fallbacks += row["fallback"]
        if row["strategy"] == "cascade":
            self.cascades += 1
            if row["escalated"] in (1, "true"):  # SQLite's json_extract: 1; PostgreSQL: text
                self.escalations += 1
        if row["latency_ms"] is not None:
            self.latencies.append(row["latency_ms"])
        if row["ttft_ms"] is not None and row["status"] == "ok":
            self.ttfts.append(row["ttft_ms"])

    def result(self, group: str, with_name: bool) -> dict[str, Any]:
        lat = sorted(self.latencies)
        ttft = sorted(self.ttfts)
        n = self.requests
        out: dict[str, Any] = {"group": group}
        if with_name:
            out["name"] = self.name
        out.update(
            requests=n,
            errors=self.errors,
            prompt_tokens=self.prompt,
            completion_tokens=self.completion,
            cached_tokens=self.cached,
            reasoning_tokens=self.reasoning,
            cost_usd=self.cost,
            unpriced=self.unpriced,
            estimated=self.estimated,
            total_tokens=self.prompt + self.completion,
            avg_latency_ms=sum(lat) / len(lat) if lat else None,
            p50_latency_ms=_percentile(lat, 0.50),
            p95_latency_ms=_percentile(lat, 0.95),
            p99_latency_ms=_percentile(lat, 0.99),
            p50_ttft_ms=_percentile(ttft, 0.50),
            fallbacks=self.fallbacks,
            cascade_requests=self.cascades,
            escalations=self.escalations,
            error_rate=self.errors / n if n else 0.0,
            fallback_rate=self.fallbacks / n if n else 0.0,
            escalation_rate=self.escalations / self.cascades if self.cascades else None,
        )
        return out


def spend_report(
    path: Location,
    since: float | None = None,
    group_by: GroupBy = "model",
    until: float | None = None,
) -> list[dict[str, Any]]:
    """Requests, errors, tokens, cost, latency, fallbacks and escalations per group, for
    requests started in ``[since, until)`` (unix seconds; either may be None).

    Groups: ``model`` = the model that answered (``(none)`` when every attempt failed),
    ``route``, ``key`` (the key id; rows also carry the key's ``name``), ``team``, ``tag`` (a
    request counts once under each of its tags, so tag totals may exceed the grand total;
    ``(untagged)`` when it has none), ``day`` (UTC, ``YYYY-MM-DD``), ``hour`` (UTC,
    ``YYYY-MM-DD HH:00``), ``confidence`` (the cost confidence: ``exact``, ``estimated``,
    ``unknown``).

    ``cost_usd`` is an exact ``Decimal``; ``unpriced`` counts requests where some attempt used
    tokens at an unknown price (cost confidence ``unknown``: their cost is a lower bound),
    ``estimated`` those whose cost is an estimate (cost confidence ``estimated``).
    ``fallbacks``: answered by another model than the first one tried, because that one failed.
    ``escalations``: cascade requests sent on to the strong tier (``escalation_rate`` is over
    ``cascade_requests``). Latency percentiles are nearest-rank. Sorted by cost, highest
    first; ``day`` and ``hour`` groups by time.
    """
    if group_by not in GROUP_BYS:
        raise ValueError(f"group_by must be one of {', '.join(GROUP_BYS)}")
    groups = _aggregate(path, since, until, group_by)
    rows = [agg.result(key, group_by == "key") for key, agg in groups.items()]
    if group_by in ("day", "hour"):
        rows.sort(key=lambda g: g["group"])
    else:
        rows.sort(key=lambda g: (-g["cost_usd"], -g["requests"], g["group"]))
    return rows


def _aggregate(
    path: Location, since: float | None, until: float | None, group_by: str
) -> dict[str, _Agg]:
    groups: dict[str, _Agg] = {}
    with _read(path) as conn:
        for row in _scan(conn, since, until):
            for key in _group_keys(row, group_by):
                agg = groups.get(key)
                if agg is None:
                    agg = groups[key] = _Agg()
                    if group_by == "key":
                        agg.name = row["key_name"]
                agg.add(row)
    return groups


def totals(
    path: Location, since: float | None = None, until: float | None = None
) -> dict[str, Any]:
    """One ``spend_report`` row (group ``"total"``) over every request in the window; all
    zeros (and None latencies) when there is none."""
    agg = _aggregate(path, since, until, "total").get("total", _Agg())
    return agg.result("total", False)


#: The most buckets ``timeseries`` returns (a guard against a tiny bucket over a long span).
MAX_BUCKETS = 5000


def timeseries(
    path: Location,
    since: float | None = None,
    until: float | None = None,
    bucket: float = 3600.0,
) -> list[dict[str, Any]]:
    """Requests, errors, tokens and cost per ``bucket`` seconds (aligned to the Unix epoch,
    so whole UTC hours or days), oldest first, with empty buckets filled in: from ``since``
    (else the first request) to ``until`` (else the last request)."""
    if bucket <= 0:
        raise ValueError("bucket must be positive")
    found: dict[int, dict[str, Any]] = {}
    where, params = _window(since, until)
    sql = (
        "SELECT r.started_at, r.status, r.prompt_tokens + r.completion_tokens AS tokens, "
        "r.cost_usd FROM requests r" + where
    )
    with _read(path) as conn:
        for started, status, tokens, cost in conn.execute(sql, params):
            i = math.floor(started / bucket)
            b = found.get(i)
            if b is None:
                b = found[i] = _bucket(i * bucket)
            b["requests"] += 1
            b["errors"] += status != "ok"
            b["tokens"] += tokens
            b["cost_usd"] += Decimal(cost)
    if not found and (since is None or until is None):
        return []
    first = math.floor(since / bucket) if since is not None else min(found)
    last = math.ceil(until / bucket) - 1 if until is not None else max(found)
    if last - first + 1 > MAX_BUCKETS:
        raise ValueError(f"more than {MAX_BUCKETS} buckets: use a larger bucket")
    return [found.get(i) or _bucket(i * bucket) for i in range(first, last + 1)]


def _bucket(start: float) -> dict[str, Any]:
    return {"start": start, "requests": 0, "errors": 0, "tokens": 0, "cost_usd": Decimal(0)}


def routing_mix(
    path: Location, since: float | None = None, until: float | None = None
) -> list[dict[str, Any]]:
    """Which models answered each route's requests: ``route``, ``model`` (``(failed)`` when
    none did), ``requests``, ``share`` of the route's requests, ``cost_usd``. Routed requests
    only; sorted by route, then by requests (most first)."""
    where, params = _window(since, until)
    where += (" AND " if where else " WHERE ") + "r.route IS NOT NULL"
    sql = "SELECT r.route, r.final_model, r.cost_usd FROM requests r" + where
    cells: dict[tuple[str, str], list[Any]] = {}
    per_route: dict[str, int] = {}
    with _read(path) as conn:
        for route, model, cost in conn.execute(sql, params):
            cell = cells.setdefault((route, model or "(failed)"), [0, Decimal(0)])
            cell[0] += 1
            cell[1] += Decimal(cost)
            per_route[route] = per_route.get(route, 0) + 1
    rows = [
        {
            "route": route,
            "model": model,
            "requests": n,
            "share": n / per_route[route],
            "cost_usd": cost,
        }
        for (route, model), (n, cost) in cells.items()
    ]
    rows.sort(key=lambda r: (r["route"], -r["requests"], r["model"]))
    return rows


def answered_usage(
    path: Location, since: float | None = None, until: float | None = None
) -> list[dict[str, Any]]:
    """Per request: ``id``, ``route``, ``final_model``, ``status``, its total ``cost_usd``
    (every attempt), ``unpriced``, and the token counts of the attempt whose answer was
    returned (``prompt_tokens``, ``completion_tokens``, ``cached_tokens``,
    ``cache_write_tokens``, ``reasoning_tokens``; all 0 when no attempt answered). The input
    of a counterfactual: what the same answer would have cost on another model."""
    where, params = _window(since, until)
    sql = (
        "SELECT r.id, r.route, r.final_model, r.status, r.cost_usd, r.unpriced, "
        "COALESCE(a.prompt_tokens, 0), COALESCE(a.completion_tokens, 0), "
        "COALESCE(a.cached_tokens, 0), COALESCE(a.cache_write_tokens, 0), "
        "COALESCE(a.reasoning_tokens, 0) "
        "FROM requests r LEFT JOIN attempts a ON a.request_id = r.id AND a.seq = ("
        "SELECT MAX(s.seq) FROM attempts s WHERE s.request_id = r.id AND s.status = 'ok' "
        "AND s.model = r.final_model)" + where + " ORDER BY r.started_at, r.id"
    )
    keys = (
        "id",
        "route",
        "final_model",
        "status",
        "cost_usd",
        "unpriced",
        "prompt_tokens",
        "completion_tokens",
        "cached_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    )
    out: list[dict[str, Any]] = []
    with _read(path) as conn:
        for row in conn.execute(sql, params):
            d = dict(zip(keys, tuple(row), strict=True))
            d["cost_usd"] = Decimal(d["cost_usd"])
            d["unpriced"] = bool(d["unpriced"])
            out.append(d)
    return out
