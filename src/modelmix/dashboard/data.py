"""Everything the dashboard shows, gathered from the ledger in one call (``collect``).

The same dictionary feeds the HTML page and the JSON endpoint, so the two never disagree.
Money stays ``Decimal`` here (JSON renders it as exact decimal strings).
"""

from __future__ import annotations

import math
import time
from decimal import Decimal
from typing import Any

import orjson

from modelmix.cache.report import cache_savings
from modelmix.dashboard.explore import exploration_rows
from modelmix.dashboard.live import deployment_rows
from modelmix.dashboard.personal import team_rows
from modelmix.gateway import Gateway
from modelmix.ledger.db import display
from modelmix.ledger.queries import (
    GroupBy,
    LedgerNotFound,
    recent_requests,
    routing_mix,
    spend_report,
    timeseries,
    totals,
)
from modelmix.reports import model_prices, portfolio_prices, route_baselines, savings_report

__all__ = ["RANGES", "collect", "decision_summary"]

#: Range name -> (span in seconds or None for all time, time-series bucket in seconds).
RANGES: dict[str, tuple[float | None, float]] = {
    "1h": (3600.0, 60.0),
    "24h": (86400.0, 1800.0),
    "7d": (7 * 86400.0, 6 * 3600.0),
    "30d": (30 * 86400.0, 86400.0),
    "all": (None, 86400.0),
}
DEFAULT_RANGE = "24h"
_GROUPS: tuple[GroupBy, ...] = ("model", "team", "route", "key", "tag", "confidence")
RECENT = 25


def decision_summary(decision: dict[str, Any]) -> str:
    """One line for a routing decision: strategy, pick, rule, escalation, skipped models."""
    bits: list[str] = []
    if decision.get("strategy"):
        bits.append(str(decision["strategy"]))
    if "rule" in decision:
        bits.append("default chain" if decision["rule"] is None else f"rule {decision['rule']}")
    if decision.get("chosen"):
        bits.append(f"chose {decision['chosen']}")
    if "escalated" in decision:
        bits.append("escalated" if decision["escalated"] else "not escalated")
    if decision.get("fallback_to"):
        bits.append(f"fallback to {decision['fallback_to']}")
    skipped = [
        f"{c.get('model')} ({c.get('reason', 'ineligible')})"
        for c in decision.get("candidates", [])
        if isinstance(c, dict) and c.get("eligible") is False
    ]
    skipped += [  # passed over by the engine (cooling down) or for latency/load (adaptive)
        f"{s.get('model')} ({s.get('reason')})"
        for s in [*decision.get("skipped", []), *decision.get("passed_over", [])]
        if isinstance(s, dict)
    ]
    if skipped:
        bits.append("skipped " + ", ".join(skipped))
    return "; ".join(bits) or "direct"


def _budgets(gateway: Gateway) -> list[dict[str, Any]]:
    """Every budget's current window: the config's and the active keys' (live counters).
    A key's budget is shown under the key's name (``display``), not only its id."""
    rows = gateway.accounting.status()
    names = {}
    if gateway.keys is not None and any(r["scope"] == "key" for r in rows):
        names = {k.id: k.name for k in gateway.keys.list(include_revoked=False)}
    for r in rows:
        if r["scope"] == "key" and r["subject"] in names:
            r["display"] = f"key {names[r['subject']]}: {r['kind']} {r['period']}"
    return rows


def _baselines(gateway: Gateway) -> Any:
    prices = (
        portfolio_prices(gateway.portfolio) if gateway.portfolio else model_prices(gateway.config)
    )
    return route_baselines(gateway.config, prices)


def collect(
    gateway: Gateway, range_name: str = DEFAULT_RANGE, now: float | None = None
) -> dict[str, Any]:
    """The dashboard's data for the requests started in the chosen range (``RANGES``)."""
    if range_name not in RANGES:
        raise ValueError(f"range must be one of {', '.join(RANGES)}")
    now = time.time() if now is None else now
    span, bucket = RANGES[range_name]
    since = None if span is None else now - span
    path = gateway.config.ledger_location
    out: dict[str, Any] = {
        "range": range_name,
        "since": since,
        "until": now,
        "bucket_seconds": bucket,
        "generated_at": now,
        "ledger": display(path),
        "budgets": _budgets(gateway),
        "deployments": deployment_rows(gateway),  # live latency and load (adaptive routing)
        "personal": team_rows(gateway),  # personalised routing per team
        "exploration": exploration_rows(gateway),  # exploration posteriors per route
    }
    try:
        out["totals"] = totals(path, since, now)
        if since is None and out["totals"]["requests"]:
            first = timeseries(path, None, now, 86400.0)[0]["start"]
            days = math.ceil((now - first) / 86400.0)
            bucket = out["bucket_seconds"] = 86400.0 * max(1, math.ceil(days / 120))
            ts_since = math.floor(first / bucket) * bucket
        else:
            ts_since = since if since is not None else now
        out["timeseries"] = timeseries(path, ts_since, now, bucket)
        out["by"] = {g: spend_report(path, since, g, now) for g in _GROUPS}
        out["routing_mix"] = routing_mix(path, since, now)
        out["savings"] = savings_report(path, _baselines(gateway), since, now)
        out["cache"] = cache_savings(path, since, now)
        recent = recent_requests(path, limit=RECENT)
    except LedgerNotFound:
        out["ledger_missing"] = True
        out["totals"] = None
        return out
    out["ledger_missing"] = False
    out["recent"] = [
        {
            "id": r["id"],
            "started_at": r["started_at"],
            "api": r["api"],
            "requested_model": r["requested_model"],
            "route": r["route"],
            "final_model": r["final_model"],
            "status": r["status"],
            "http_status": r["http_status"],
            "error": r["error"],
            "key_id": r["key_id"],
            "team": r.get("team"),
            "tags": orjson.loads(r["tags"]) if r.get("tags") else [],
            "cost_confidence": r.get("cost_confidence", "exact"),
            "stream": r["stream"],
            "prompt_tokens": r["prompt_tokens"],
            "completion_tokens": r["completion_tokens"],
            "cost_usd": r["cost_usd"],
            "unpriced": r["unpriced"],
            "latency_ms": r["latency_ms"],
            "attempts": [
                {
                    "model": a["model"],
                    "status": a["status"],
                    "http_status": a["http_status"],
                    "error_kind": a["error_kind"],
                    "cost_usd": a["cost_usd"],
                }
                for a in r["attempts"]
            ],
            "decision": r["decision"],
            "decision_summary": decision_summary(r["decision"]),
        }
        for r in recent
    ]
    return out


def money_total(rows: list[dict[str, Any]], key: str = "cost_usd") -> Decimal:
    return sum((r[key] for r in rows), Decimal(0))
