"""Reports over the ledger: spend tables, routing mix and savings against a baseline.

Savings are a counterfactual: for every answered request on a route, what the same answer
would have cost on the route's *baseline* model, priced from the real token counts of the
attempt whose answer was returned (prompt, completion, cached, cache-write and reasoning
tokens, so the baseline is assumed to have hit the same prompt cache). The baseline is the
route's ``baseline`` setting when the config has one, else the route's most expensive model by
output price. What the route really spent counts every attempt (retries, fallbacks, cascade
voters), failed requests included, so ``saved_usd`` is net of the router's own overhead.

Savings are cost-only until something measures answer quality: the ledger holds no eval or
feedback data yet, so every savings result carries a ``quality`` entry saying so rather than
guessing. The hook for that is ``QualitySource``: pass one to ``savings_report`` (evals and user
feedback, issue 6, will) and each route row gains its ``quality`` (the route's measured quality
next to its baseline's), the ``quality`` entry its summary.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol

from modelmix.config import SIMULATED_BASE_URL, Config
from modelmix.ledger.db import display
from modelmix.ledger.queries import (
    GROUP_BYS,
    answered_usage,
    routing_mix,
    spend_report,
    totals,
)
from modelmix.portfolio import ModelEntry
from modelmix.pricing import Price, PriceOverride, resolve_price
from modelmix.providers.specs import spec_for
from modelmix.types import Usage

__all__ = [
    "NO_QUALITY_DATA",
    "Baseline",
    "QualitySource",
    "build_report",
    "model_prices",
    "portfolio_prices",
    "route_baselines",
    "savings_report",
    "write_csv",
]

#: Shown with every savings figure until the ledger records evals or feedback.
NO_QUALITY_DATA = (
    "no eval or feedback data recorded yet: savings are cost-only and say nothing about "
    "whether the cheaper answers were as good"
)

_ZERO = Decimal(0)


class QualitySource(Protocol):
    """Measured answer quality per route, to set against the savings (evals, feedback)."""

    #: Shown with the savings, e.g. "graded by 1,204 thumbs up/down".
    description: str

    def route_quality(
        self, route: str, baseline: str | None, since: float | None, until: float | None
    ) -> dict[str, Any] | None:
        """For requests to ``route`` in ``[since, until)``: e.g. ``{"samples": 120,
        "quality": 0.91, "baseline_quality": 0.93}``; None when nothing was measured."""
        ...


@dataclass(frozen=True, slots=True)
class Baseline:
    """The model a route's spend is compared against."""

    route: str
    model: str | None  # None when no baseline can be priced
    reason: str  # "configured", "most expensive by output price", or why there is none
    price: Price | None = None


def model_prices(config: Config) -> dict[str, Price | None]:
    """Each configured model's price (its first deployment), as the gateway resolves it.

    Looks prices up in genai-prices' bundled snapshot (no network); call once per report."""
    prices: dict[str, Price | None] = {}
    for m in config.models:
        spec = spec_for(m.provider)
        kind, preset_url = spec.adapter, spec.default_url
        dep = m.deployments[0] if m.deployments else None
        url = (dep.base_url if dep else None) or m.base_url or preset_url
        base_url = None if url == SIMULATED_BASE_URL else url
        upstream = (dep.model if dep else None) or m.model or m.name
        override = None
        if m.price is not None:
            p = m.price
            override = PriceOverride(
                input=p.input,
                output=p.output,
                cached_input=p.cached_input,
                cache_write=p.cache_write,
                reasoning=p.reasoning,
            )
        prices[m.name] = resolve_price(kind, upstream, base_url=base_url, override=override)
    return prices


def portfolio_prices(portfolio: Mapping[str, ModelEntry]) -> dict[str, Price | None]:
    """Each portfolio model's price (its first deployment), already resolved at start-up."""
    return {
        name: next((d.price for d in entry.deployments if d.price is not None), None)
        for name, entry in portfolio.items()
    }


def route_baselines(config: Config, prices: Mapping[str, Price | None]) -> dict[str, Baseline]:
    """Each configured route's baseline: its ``baseline`` setting, else its most expensive
    model by output price (then input price; first listed on a tie)."""
    out: dict[str, Baseline] = {}
    for route in config.routes:
        configured: str | None = getattr(route, "baseline", None)
        if configured is not None:
            price = prices.get(configured)
            reason = "configured" if price is not None else "configured, but it has no price"
            out[route.name] = Baseline(route.name, configured if price else None, reason, price)
            continue
        best: tuple[Decimal, Decimal] | None = None
        chosen: str | None = None
        for name in dict.fromkeys(route.all_models()):
            price = prices.get(name)
            if price is None:
                continue
            rank = (price.output_token, price.input_token)
            if best is None or rank > best:
                best, chosen = rank, name
        if chosen is None:
            out[route.name] = Baseline(route.name, None, "none of its models has a price")
        else:
            out[route.name] = Baseline(
                route.name, chosen, "most expensive by output price", prices[chosen]
            )
    return out


def _pct(saved: Decimal, baseline: Decimal) -> float | None:
    return float(saved / baseline) if baseline else None


def savings_report(
    path: str | Path,
    baselines: Mapping[str, Baseline],
    since: float | None = None,
    until: float | None = None,
    quality: QualitySource | None = None,
) -> dict[str, Any]:
    """Savings per route and in total (exact Decimals), for requests in ``[since, until)``.

    Each route row: ``route``, ``baseline``, ``baseline_reason``, ``requests``, ``answered``,
    ``actual_cost_usd`` (everything the route spent), ``baseline_cost_usd`` (the answered
    requests on the baseline), ``saved_usd`` (baseline - actual), ``saved_pct`` (of the
    baseline cost, None when it is 0), ``on_baseline`` (answered by the baseline itself),
    ``unpriced`` (requests whose real cost is a lower bound), ``quality`` (from ``quality``,
    else None). Routes without a baseline are
    listed with None figures and left out of the total. Requests sent to a model directly
    (no route) have no baseline: their count and spend are in ``unrouted``.
    """
    per_route: dict[str, dict[str, Any]] = {}
    unrouted: dict[str, Any] = {"requests": 0, "cost_usd": _ZERO}
    for r in answered_usage(path, since, until):
        route = r["route"]
        if route is None:
            unrouted["requests"] += 1
            unrouted["cost_usd"] += r["cost_usd"]
            continue
        row = per_route.get(route)
        if row is None:
            b = baselines.get(route) or Baseline(route, None, "route not in the current config")
            row = per_route[route] = {
                "route": route,
                "baseline": b.model,
                "baseline_reason": b.reason,
                "requests": 0,
                "answered": 0,
                "on_baseline": 0,
                "unpriced": 0,
                "actual_cost_usd": _ZERO,
                "baseline_cost_usd": _ZERO if b.price is not None else None,
                "_price": b.price,
            }
        row["requests"] += 1
        row["actual_cost_usd"] += r["cost_usd"]
        row["unpriced"] += r["unpriced"]
        if r["status"] != "ok" or r["final_model"] is None:
            continue
        row["answered"] += 1
        if r["final_model"] == row["baseline"]:
            row["on_baseline"] += 1
        price: Price | None = row["_price"]
        if price is not None:
            usage = Usage(
                prompt_tokens=r["prompt_tokens"],
                completion_tokens=r["completion_tokens"],
                cached_tokens=r["cached_tokens"],
                cache_write_tokens=r["cache_write_tokens"],
                reasoning_tokens=r["reasoning_tokens"],
            )
            row["baseline_cost_usd"] += price.cost(usage)

    routes = sorted(per_route.values(), key=lambda x: x["route"])
    total_actual = total_baseline = _ZERO
    for row in routes:
        del row["_price"]
        if row["baseline_cost_usd"] is None:
            row["saved_usd"] = None
            row["saved_pct"] = None
            continue
        row["saved_usd"] = row["baseline_cost_usd"] - row["actual_cost_usd"]
        row["saved_pct"] = _pct(row["saved_usd"], row["baseline_cost_usd"])
        total_actual += row["actual_cost_usd"]
        total_baseline += row["baseline_cost_usd"]
    saved = total_baseline - total_actual
    measured = 0
    for row in routes:
        q = quality.route_quality(row["route"], row["baseline"], since, until) if quality else None
        row["quality"] = q
        measured += q is not None
    if quality is not None and measured:
        quality_entry: dict[str, Any] = {
            "available": True,
            "note": f"{quality.description} ({measured} of {len(routes)} routes measured)",
        }
    else:
        quality_entry = {"available": False, "note": NO_QUALITY_DATA}
    return {
        "routes": routes,
        "total": {
            "actual_cost_usd": total_actual,
            "baseline_cost_usd": total_baseline,
            "saved_usd": saved,
            "saved_pct": _pct(saved, total_baseline),
        },
        "unrouted": unrouted,
        "quality": quality_entry,
        "method": (
            "each answered request re-priced on its route's baseline model from the token "
            "counts of the attempt that answered; actual cost counts every attempt"
        ),
    }


def build_report(
    path: str | Path,
    *,
    since: float | None = None,
    until: float | None = None,
    group_bys: Iterable[str] = GROUP_BYS,
    baselines: Mapping[str, Baseline] | None = None,
) -> dict[str, Any]:
    """Everything ``modelmix report`` exports: totals, spend per grouping, routing mix and
    (given ``baselines``) savings. Money stays ``Decimal``."""
    return {
        "generated_at": time.time(),
        "since": since,
        "until": until,
        "ledger": display(path),
        "totals": totals(path, since, until),
        "by": {g: spend_report(path, since, g, until) for g in group_bys},  # type: ignore[arg-type]
        "routing_mix": routing_mix(path, since, until),
        "savings": None if baselines is None else savings_report(path, baselines, since, until),
    }


#: CSV columns: spend rows first, then the savings columns (filled on ``savings`` rows only).
CSV_COLUMNS = (
    "dimension",
    "group",
    "name",
    "requests",
    "errors",
    "error_rate",
    "fallbacks",
    "fallback_rate",
    "cascade_requests",
    "escalations",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced",
    "estimated",
    "avg_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "p50_ttft_ms",
    "baseline",
    "baseline_cost_usd",
    "saved_usd",
    "saved_pct",
)


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def write_csv(report: Mapping[str, Any], out: IO[str]) -> int:
    """Write ``build_report``'s tables as one long CSV (a ``dimension`` column names the
    grouping; ``savings`` rows carry one route each, ``total`` the grand totals). Money is
    exact fixed-point text. Returns the number of data rows."""
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore")
    writer.writeheader()
    n = 0

    def put(dimension: str, row: Mapping[str, Any]) -> None:
        nonlocal n
        writer.writerow({k: _cell(v) for k, v in {"dimension": dimension, **row}.items()})
        n += 1

    put("total", report["totals"])
    for dimension, rows in report["by"].items():
        for row in rows:
            put(dimension, row)
    savings = report.get("savings")
    if savings:
        for row in savings["routes"]:
            put(
                "savings",
                {
                    "group": row["route"],
                    "requests": row["requests"],
                    "cost_usd": row["actual_cost_usd"],
                    "unpriced": row["unpriced"],
                    "baseline": row["baseline"],
                    "baseline_cost_usd": row["baseline_cost_usd"],
                    "saved_usd": row["saved_usd"],
                    "saved_pct": row["saved_pct"],
                },
            )
    return n
