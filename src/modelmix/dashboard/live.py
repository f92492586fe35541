"""The dashboard's "Deployments: latency and load" card: each deployment's live estimates
(time to first token, tokens per second, error share, in flight against its capacity), read
from the gateway's live stats (adaptive/live.py), the same numbers routing decides on."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modelmix.gateway import Gateway

__all__ = ["deployment_rows", "live_card"]

DASH = "\u2013"  # en dash: "no value"


def deployment_rows(gateway: Gateway) -> list[dict[str, Any]]:
    """One row per deployment of the portfolio (nothing before the gateway started)."""
    try:
        engine = gateway.engine
    except RuntimeError:  # not started
        return []
    rows = []
    for entry in gateway.portfolio.values():
        for d in entry.deployments:
            est = engine.live.estimate(d.id)
            rows.append(
                {
                    "deployment": d.id,
                    "model": entry.name,
                    "ttft_ms": est.ttft_ms,
                    "tokens_per_s": est.tokens_per_s,
                    "error_rate": est.error_rate,
                    "in_flight": est.in_flight,
                    "server_queue": est.queued,  # running + waiting by queue metrics
                    "capacity": d.capacity,
                    "balance": d.balance,
                    "samples": est.samples,
                }
            )
    return rows


def _num(v: float | None, fmt: str) -> str:
    return DASH if v is None else format(v, fmt)


def live_card(data: dict[str, Any]) -> str:
    rows = data.get("deployments") or []
    if not rows:
        body = '<p class="empty">no deployment has answered yet</p>'
    else:
        trs = "".join(
            f"<tr><td>{escape(r['deployment'])}</td>"
            f"<td class='n'>{_num(r['ttft_ms'], ',.0f')} ms</td>"
            f"<td class='n'>{_num(r['tokens_per_s'], ',.0f')}</td>"
            f"<td class='n'>{r['error_rate']:.0%}</td>"
            f"<td class='n'>{r['in_flight']}"
            f"{'' if r['capacity'] is None else ' / ' + str(r['capacity'])}"
            f"{'' if r.get('server_queue') is None else ' (server queue)'}</td>"
            f"<td>{escape(r['balance'])}</td><td class='n'>{r['samples']:,}</td></tr>"
            for r in rows
        )
        body = (
            "<table><tr><th>deployment</th><th class='n'>time to first token</th>"
            "<th class='n'>tokens/s</th><th class='n'>errors</th><th class='n'>in flight</th>"
            "<th>balance</th><th class='n'>answers</th></tr>" + trs + "</table>"
        )
    return (
        '<section class="card"><h2>Deployments: latency and load</h2>'
        + body
        + '<p class="note">live estimates (recent answers fading into the ledger baseline) '
        "that adaptive routes decide on; in flight / capacity across all workers</p></section>"
    )
