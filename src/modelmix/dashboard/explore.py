"""The dashboard's "Exploration" card: per route with an ``explore:`` section, each candidate's
acceptance posterior (labels from feedback and judgements; ``adaptive/explore.py``) and the
canary the exploration last proposed (``quality/explore.py``)."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelmix.gateway import Gateway

__all__ = ["exploration_rows", "explore_card"]


def exploration_rows(gateway: Gateway) -> list[dict[str, Any]]:
    """One row per (route, candidate) of the routes that explore (none when none does)."""
    loop = gateway.quality
    if loop is None or not loop.explores:
        return []
    post = loop.explorer.posteriors
    rows = []
    for route in gateway.config.routes:
        cfg = route.explore
        if cfg is None:
            continue
        for model in dict.fromkeys([*route.models[:1], *(cfg.candidates or route.models)]):
            a, b = post.beta(route.name, model, cfg.prior)
            _, n = post.arms.get((route.name, model), (0.0, 0))
            rows.append(
                {
                    "route": route.name,
                    "model": model,
                    "default": bool(route.models) and model == route.models[0],
                    "labelled": n,
                    "mean": a / (a + b),
                    "alpha": a,
                    "beta": b,
                }
            )
    return rows


def explore_card(data: dict[str, Any]) -> str:
    rows = data.get("exploration") or []
    if not rows:
        return ""
    trs = "".join(
        f"<tr><td>{escape(r['route'])}</td><td>{escape(r['model'])}"
        f"{' (default)' if r['default'] else ''}</td>"
        f"<td class='n'>{int(r['labelled']):,}</td>"
        f"<td class='n'>{float(r['mean']):.1%}</td>"
        f"<td class='n'>Beta({float(r['alpha']):.1f}, {float(r['beta']):.1f})</td></tr>"
        for r in rows
    )
    return (
        '<section class="card"><h2>Exploration</h2>'
        "<table><tr><th>route</th><th>model</th><th class='n'>labelled</th>"
        "<th class='n'>acceptance (posterior mean)</th><th class='n'>posterior</th></tr>"
        + trs
        + "</table>"
        + '<p class="note">Thompson sampling on a small share of each route\'s traffic, within '
        "its budget and latency limits; a candidate that beats the default is proposed as a "
        "canary, whose guardrails decide (<code>modelmix policy status</code>)</p></section>"
    )
