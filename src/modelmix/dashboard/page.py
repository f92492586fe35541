"""The dashboard's HTML: one self-contained page (inline CSS and SVG, no scripts, no network)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from typing import Any

from modelmix.dashboard.data import RANGES
from modelmix.dashboard.explore import explore_card
from modelmix.dashboard.live import live_card
from modelmix.dashboard.personal import personal_card
from modelmix.dashboard.svg import PALETTE, column_chart, hbar_chart, share_bar

__all__ = ["login_page", "render_page"]

DASH = "\u2013"  # en dash: "no value"

_CSS = """
:root { --fg:#1d2330; --muted:#667085; --line:#e4e7ec; --bg:#f6f7f9; --card:#fff;
  --accent:#0072B2; --bad:#D55E00; --good:#009E73; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
  color:var(--fg); background:var(--bg); }
header { display:flex; align-items:center; gap:24px; padding:14px 28px; background:#111827;
  color:#fff; }
header h1 { font-size:18px; margin:0; font-weight:600; }
header .meta { color:#9ca3af; font-size:12px; margin-left:auto; }
nav a { color:#d1d5db; text-decoration:none; padding:4px 10px; border-radius:6px;
  font-size:13px; }
nav a.on { background:#374151; color:#fff; }
main { padding:20px 28px 40px; max-width:1400px; }
.kpis { display:grid; grid-template-columns:repeat(auto-fill,minmax(165px,1fr)); gap:12px;
  margin-bottom:18px; }
.kpi { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:12px 14px; }
.kpi .v { font-size:22px; font-weight:650; margin-top:2px; font-variant-numeric:tabular-nums; }
.kpi .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.kpi .s { color:var(--muted); font-size:12px; }
.grid2 { display:grid; grid-template-columns:repeat(auto-fit,minmax(600px,1fr)); gap:0 16px; }
svg.wide { display:block; height:auto; }
section.card { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:14px 18px; margin-bottom:16px; overflow-x:auto; }
section.card h2 { font-size:15px; margin:0 0 10px; font-weight:600; }
.note { color:var(--muted); font-size:12px; margin:6px 0 0; }
.empty { color:var(--muted); font-style:italic; }
table { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
th, td { text-align:left; padding:5px 8px; border-bottom:1px solid var(--line);
  vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; }
td.n, th.n { text-align:right; white-space:nowrap; }
tr.err td { background:#fff5f0; }
.pill { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px;
  background:#eef2f6; }
.pill.bad { background:#fde7dc; color:#9a3412; }
.pill.ok { background:#dcf5ec; color:#065f46; }
.chain { font-family:ui-monospace,SFMono-Regular,Menlo,monospace; font-size:12px; }
td.nw, th { white-space:nowrap; }
td .note { margin:0; font-size:11px; }
details summary { cursor:pointer; color:var(--muted); font-size:12px; }
details pre { white-space:pre-wrap; font-size:11px; max-width:520px; }
.legend span { display:inline-flex; align-items:center; gap:5px; margin-right:14px;
  font-size:12px; }
.legend i { width:11px; height:11px; border-radius:2px; display:inline-block; }
.meter { background:#eef2f6; border-radius:5px; height:10px; width:160px; overflow:hidden; }
.meter b { display:block; height:100%; }
svg.chart text { font-size:12px; fill:var(--fg); }
svg.chart text.axis { fill:var(--muted); font-size:11px; }
svg.chart text.val { fill:var(--muted); }
svg.chart text.inbar { fill:#fff; font-size:11px; font-weight:600; }
svg.chart line.grid { stroke:var(--line); }
form.login { max-width:380px; margin:80px auto; background:#fff; padding:24px;
  border:1px solid var(--line); border-radius:10px; }
form.login input { width:100%; padding:8px; margin:10px 0; font-size:14px; }
form.login button { padding:8px 16px; font-size:14px; }
"""


def _money(value: Decimal | None, unpriced: bool = False) -> str:
    if value is None:
        return DASH
    if value == 0:
        text = "$0"
    elif abs(value) < Decimal("0.01"):
        text = f"${value:.6f}"
    elif abs(value) < 100:
        text = f"${value:.4f}"
    else:
        text = f"${value:,.2f}"
    return text + ("*" if unpriced else "")


def _ms(value: float | None) -> str:
    if value is None:
        return DASH
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def _pct(value: float | None) -> str:
    return DASH if value is None else f"{value:.1%}"


def _when(ts: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime(fmt)


def _kpi(label: str, value: str, sub: str = "") -> str:
    return (
        f'<div class="kpi"><div class="k">{escape(label)}</div><div class="v">{escape(value)}'
        f'</div><div class="s">{escape(sub)}</div></div>'
    )


def _card(title: str, body: str, note: str = "", cls: str = "") -> str:
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    return f'<section class="card {cls}"><h2>{escape(title)}</h2>{body}{note_html}</section>'


def _colors(names: list[str]) -> dict[str, str]:
    models = sorted(set(names) - {"(failed)"})
    colors = {n: PALETTE[i % (len(PALETTE) - 1)] for i, n in enumerate(models)}
    colors["(failed)"] = "#9ca3af"
    return colors


def _spend_bars(rows: list[dict[str, Any]], title: str, color: str) -> str:
    return hbar_chart(
        [
            (
                r.get("name") or r["group"],  # a key's name rather than its id
                float(r["cost_usd"]),
                f"{_money(r['cost_usd'], bool(r['unpriced']))} · {r['requests']:,} req",
            )
            for r in rows[:12]
        ],
        color=color,
        title=title,
    )


def _timeseries(data: dict[str, Any]) -> str:
    ts = data["timeseries"]
    bucket = data["bucket_seconds"]
    fmt = "%H:%M" if bucket < 86400 and data["range"] in ("1h", "24h") else "%m-%d"
    if bucket < 86400 and data["range"] not in ("1h", "24h"):
        fmt = "%m-%d %H:%M"
    labels = [_when(b["start"], fmt) for b in ts]
    tips = [
        f"{_when(b['start'], '%Y-%m-%d %H:%M')} UTC: {_money(b['cost_usd'])}, "
        f"{b['requests']:,} requests, {b['errors']:,} errors"
        for b in ts
    ]
    spend = column_chart(
        [float(b["cost_usd"]) for b in ts],
        labels,
        y_format="${:,.4f}",
        title="spend over time",
        tips=tips,
    )
    reqs = column_chart(
        [float(b["requests"]) for b in ts],
        labels,
        stacked=[float(b["errors"]) for b in ts],
        color=PALETTE[4],
        title="requests over time",
        tips=tips,
        height=150,
    )
    legend = (
        f'<div class="legend"><span><i style="background:{PALETTE[4]}"></i>requests</span>'
        f'<span><i style="background:{PALETTE[5]}"></i>errors</span></div>'
    )
    step = f"{bucket / 3600:g} h" if bucket < 86400 else f"{bucket / 86400:g} d"
    return _card(
        "Spend over time",
        spend + "<h2 style='margin-top:12px'>Requests and errors</h2>" + reqs + legend,
        f"one column per {step} (UTC)",
        "timeseries",
    )


def _routing_mix(data: dict[str, Any]) -> str:
    mix = data["routing_mix"]
    if not mix:
        return _card("Routing mix", '<p class="empty">no routed requests in this period</p>')
    colors = _colors([m["model"] for m in mix])
    routes: dict[str, list[dict[str, Any]]] = {}
    for m in mix:
        routes.setdefault(m["route"], []).append(m)
    rows = []
    for route, cells in routes.items():
        n = sum(c["requests"] for c in cells)
        bar = share_bar([(c["model"], c["share"], colors[c["model"]]) for c in cells])
        legend = "".join(
            f'<span><i style="background:{colors[c["model"]]}"></i>{escape(c["model"])} '
            f"{c['requests']:,}</span>"
            for c in cells
        )
        rows.append(
            f"<tr><td>{escape(route)}</td><td class='n'>{n:,}</td><td>{bar}"
            f'<div class="legend">{legend}</div></td></tr>'
        )
    body = (
        "<table><tr><th>route</th><th class='n'>requests</th><th>answered by</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    return _card("Routing mix", body, "share of each route's requests by the model that answered")


def _latency(data: dict[str, Any]) -> str:
    rows = [r for r in data["by"]["model"] if r["p50_latency_ms"] is not None]
    if not rows:
        return _card("Latency and errors by model", '<p class="empty">no data in this period</p>')
    top = max(r["p99_latency_ms"] or 0 for r in rows) or 1.0
    out = []
    for r in rows:
        w50 = 160 * r["p50_latency_ms"] / top
        w95 = 160 * (r["p95_latency_ms"] or 0) / top
        w99 = 160 * (r["p99_latency_ms"] or 0) / top
        bar = (
            f'<svg class="chart" width="164" height="14" viewBox="0 0 164 14">'
            f'<rect x="0" y="3" width="{w99:.1f}" height="8" fill="#c7d7ea" rx="2"/>'
            f'<rect x="0" y="3" width="{w95:.1f}" height="8" fill="#7fb0d8" rx="2"/>'
            f'<rect x="0" y="3" width="{w50:.1f}" height="8" fill="{PALETTE[0]}" rx="2"/></svg>'
        )
        err = r["error_rate"]
        pill = "bad" if err > 0.05 else ("ok" if err == 0 else "")
        out.append(
            f"<tr><td>{escape(r['group'])}</td><td class='n'>{r['requests']:,}</td>"
            f"<td class='n'>{_ms(r['p50_latency_ms'])}</td>"
            f"<td class='n'>{_ms(r['p95_latency_ms'])}</td>"
            f"<td class='n'>{_ms(r['p99_latency_ms'])}</td><td>{bar}</td>"
            f"<td class='n'><span class='pill {pill}'>{_pct(err)}</span></td>"
            f"<td class='n'>{r['fallbacks']:,}</td></tr>"
        )
    body = (
        "<table><tr><th>model</th><th class='n'>requests</th><th class='n'>p50</th>"
        "<th class='n'>p95</th><th class='n'>p99</th><th>p50 / p95 / p99</th>"
        "<th class='n'>error rate</th><th class='n'>fallbacks</th></tr>" + "".join(out) + "</table>"
    )
    return _card(
        "Latency and errors by model",
        body,
        "latency of the whole request (all attempts); model = the one that answered, "
        "(none) = every attempt failed",
    )


def _savings(data: dict[str, Any]) -> str:
    s = data["savings"]
    if not s["routes"]:
        body = '<p class="empty">no routed requests in this period</p>'
    else:
        rows = []
        for r in s["routes"]:
            baseline = escape(r["baseline"] or f"{DASH} ({r['baseline_reason']})")
            rows.append(
                f"<tr><td>{escape(r['route'])}</td><td>{baseline}</td>"
                f"<td class='n'>{r['requests']:,}</td>"
                f"<td class='n'>{_money(r['actual_cost_usd'], bool(r['unpriced']))}</td>"
                f"<td class='n'>{_money(r['baseline_cost_usd'])}</td>"
                f"<td class='n'>{_money(r['saved_usd'])}</td>"
                f"<td class='n'>{_pct(r['saved_pct'])}</td></tr>"
            )
        t = s["total"]
        rows.append(
            f"<tr><th>total</th><th></th><th></th><th class='n'>{_money(t['actual_cost_usd'])}"
            f"</th><th class='n'>{_money(t['baseline_cost_usd'])}</th>"
            f"<th class='n'>{_money(t['saved_usd'])}</th><th class='n'>{_pct(t['saved_pct'])}"
            "</th></tr>"
        )
        body = (
            "<table><tr><th>route</th><th>baseline</th><th class='n'>requests</th>"
            "<th class='n'>actual</th><th class='n'>all on baseline</th><th class='n'>saved</th>"
            "<th class='n'>saved %</th></tr>" + "".join(rows) + "</table>"
        )
    note = (
        "Counterfactual: each answered request re-priced on its route's baseline model from "
        "its real token counts. Quality: " + s["quality"]["note"] + "."
    )
    return _card("Savings against baseline", body, note)


_CONFIDENCE_NOTE = {
    "exact": "every token priced as billed",
    "estimated": "a price or a token count is an estimate",
    "unknown": "tokens at an unknown price: a lower bound",
}


def _confidence(data: dict[str, Any]) -> str:
    rows = {r["group"]: r for r in data["by"].get("confidence", [])}
    if not rows:
        return _card("Cost confidence", '<p class="empty">no data in this period</p>')
    total = sum(r["requests"] for r in rows.values()) or 1
    colors = {"exact": PALETTE[2], "estimated": PALETTE[1], "unknown": PALETTE[5]}
    bar = share_bar([(k, rows[k]["requests"] / total, colors[k]) for k in colors if k in rows])
    body = (
        f"{bar}<table><tr><th>confidence</th><th class='n'>requests</th>"
        "<th class='n'>spend</th><th>meaning</th></tr>"
        + "".join(
            f"<tr><td><span class='pill' style='background:{colors[k]}33'>{k}</span></td>"
            f"<td class='n'>{rows[k]['requests']:,}</td>"
            f"<td class='n'>{_money(rows[k]['cost_usd'])}</td>"
            f"<td>{escape(_CONFIDENCE_NOTE[k])}</td></tr>"
            for k in colors
            if k in rows
        )
        + "</table>"
    )
    return _card("Cost confidence", body, "how far each request's cost can be trusted")


def _budgets(data: dict[str, Any]) -> str:
    budgets = data["budgets"]
    if budgets is None:
        return _card("Budgets", '<p class="empty">no budgets configured</p>')
    if not budgets:
        return _card("Budgets", '<p class="empty">no budgets configured</p>')
    rows = []
    for b in budgets:
        allowed = b["allowed_usd"]
        used = b["spent_usd"] + b["reserved_usd"]
        share = float(used / allowed) if allowed else 1.0
        color = PALETTE[5] if share >= 0.9 else (PALETTE[1] if share >= 0.7 else PALETTE[2])
        paced = (
            f"<br><span class='note'>{_money(allowed)} so far</span>"
            if b["kind"] == "paced"
            else ""
        )
        meter = (
            f'<div class="meter" title="{share:.0%}"><b style="width:{min(share, 1) * 100:.0f}%;'
            f'background:{color}"></b></div>'
        )
        rows.append(
            f"<tr><td title='{escape(str(b['name']))}'>{escape(str(b.get('display') or b['name']))}"
            f"</td><td>{escape(str(b['kind']))}</td>"
            f"<td>{escape(str(b['period']))}</td>"
            f"<td class='n'>{_money(b['spent_usd'])}</td>"
            f"<td class='n'>{_money(b['reserved_usd'])}</td>"
            f"<td class='n'>{_money(b['limit_usd'])}{paced}</td>"
            f"<td class='n'>{_money(b['remaining_usd'])}</td><td>{meter}</td>"
            f"<td class='n'>{b['pressure']:.2f}</td></tr>"
        )
    body = (
        "<table><tr><th>budget</th><th>kind</th><th>period</th><th class='n'>spent</th>"
        "<th class='n'>in flight</th><th class='n'>limit</th><th class='n'>remaining</th>"
        "<th>used</th><th class='n'>pressure</th></tr>" + "".join(rows) + "</table>"
    )
    return _card(
        "Budgets",
        body,
        "used = spent + in flight, of what the budget allows now (a paced budget's allowance "
        "grows through its period); pressure > 0 steers routing towards cheaper models",
    )


def _chain(attempts: list[dict[str, Any]]) -> str:
    parts = []
    for a in attempts:
        outcome = (
            a["status"]
            if a["status"] in ("ok", "cut")
            else str(a["http_status"] or a["error_kind"] or a["status"])
        )
        parts.append(f"{a['model']}:{outcome}")
    return " → ".join(parts) or DASH


def _recent(data: dict[str, Any]) -> str:
    recent = data.get("recent") or []
    if not recent:
        return _card("Recent requests", '<p class="empty">no requests recorded yet</p>')
    import orjson

    rows = []
    for r in recent:
        status = (
            "<span class='pill ok'>ok</span>"
            if r["status"] == "ok"
            else f"<span class='pill bad'>{r['http_status']}</span>"
        )
        decision = orjson.dumps(r["decision"], option=orjson.OPT_INDENT_2, default=str).decode()
        asked = r["requested_model"] + (" (route)" if r["route"] else "")
        who = " · ".join(
            x for x in (r.get("team") and f"team {r['team']}", ", ".join(r.get("tags") or ())) if x
        )
        who_html = f"<br><span class='note'>{escape(who)}</span>" if who else ""
        rows.append(
            f"<tr class='{'err' if r['status'] != 'ok' else ''}'>"
            f"<td class='nw'>{_when(r['started_at'], '%m-%d %H:%M:%S')}</td>"
            f"<td class='chain nw'>{escape(r['id'])}</td><td>{escape(asked)}{who_html}</td>"
            f"<td>{escape(r['final_model'] or DASH)}</td><td>{status}</td>"
            f"<td class='chain'>{escape(_chain(r['attempts']))}</td>"
            f"<td>{escape(r['decision_summary'])}<details><summary>decision</summary>"
            f"<pre>{escape(decision)}</pre></details></td>"
            f"<td class='n'>{r['prompt_tokens']:,}/{r['completion_tokens']:,}</td>"
            f"<td class='n'>{_money(r['cost_usd'], r['unpriced'])}"
            f"{'~' if r.get('cost_confidence') == 'estimated' else ''}</td>"
            f"<td class='n'>{_ms(r['latency_ms'])}</td></tr>"
        )
    body = (
        "<table><tr><th>time (UTC)</th><th>id</th><th>asked for</th><th>answered by</th>"
        "<th>status</th><th>attempts</th><th>routing decision</th>"
        "<th class='n'>tokens in/out</th><th class='n'>cost</th><th class='n'>latency</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    return _card("Recent requests", body, f"the latest {len(recent)}, whatever the range")


def _head(title: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
    )


def render_page(data: dict[str, Any]) -> str:
    """The full dashboard for ``collect()``'s data."""
    nav = "".join(
        f'<a href="?range={r}" class="{"on" if r == data["range"] else ""}">{r}</a>' for r in RANGES
    )
    header = (
        f"<header><h1>modelmix</h1><nav>{nav}</nav><div class='meta'>ledger "
        f"{escape(data['ledger'])} · {_when(data['generated_at'])} UTC</div></header>"
    )
    if data.get("ledger_missing"):
        body = _card(
            "No ledger yet",
            '<p class="empty">the gateway has not recorded any request yet</p>',
        )
        return _head("modelmix dashboard") + header + f"<main>{body}</main></body></html>"

    t = data["totals"]
    s = data["savings"]["total"]
    escal = f"{t['escalations']:,} / {t['cascade_requests']:,}" if t["cascade_requests"] else DASH
    kpis = "".join(
        [
            _kpi(
                "Spend",
                _money(t["cost_usd"], bool(t["unpriced"])),
                f"range {data['range']}"
                + (f" · {t['estimated']:,} estimated" if t["estimated"] else "")
                + (f" · {t['unpriced']:,} unpriced" if t["unpriced"] else ""),
            ),
            _kpi("Requests", f"{t['requests']:,}", f"{t['total_tokens']:,} tokens"),
            _kpi("Error rate", _pct(t["error_rate"]), f"{t['errors']:,} failed"),
            _kpi("Fallbacks", _pct(t["fallback_rate"]), f"{t['fallbacks']:,} requests"),
            _kpi("Escalations", escal, "cascade requests sent to the strong tier"),
            _kpi(
                "Latency p50 / p95",
                f"{_ms(t['p50_latency_ms'])}",
                f"p95 {_ms(t['p95_latency_ms'])} · p99 {_ms(t['p99_latency_ms'])}",
            ),
            _kpi(
                "Saved vs baseline",
                _money(s["saved_usd"]),
                f"{_pct(s['saved_pct'])} of {_money(s['baseline_cost_usd'])}",
            ),
            _kpi(
                "Cache hits",
                f"{data['cache']['hits']:,}",
                f"saved {_money(data['cache']['saved_usd'])} (response cache)",
            ),
        ]
    )
    by = data["by"]
    spend_by = (
        '<div class="grid2">'
        + _card("Spend by model", _spend_bars(by["model"], "spend by model", PALETTE[0]))
        + _card("Spend by route", _spend_bars(by["route"], "spend by route", PALETTE[2]))
        + _card("Spend by team", _spend_bars(by["team"], "spend by team", PALETTE[3]))
        + _card("Spend by key", _spend_bars(by["key"], "spend by key", PALETTE[1]))
        + _card(
            "Spend by tag",
            _spend_bars(by["tag"], "spend by tag", PALETTE[4]),
            "a request counts under each of its tags",
        )
        + _confidence(data)
        + "</div>"
    )
    main = (
        f'<div class="kpis">{kpis}</div>'
        + _timeseries(data)
        + '<div class="grid2">'
        + _routing_mix(data)
        + _savings(data)
        + "</div>"
        + spend_by
        + _latency(data)
        + live_card(data)
        + personal_card(data)
        + explore_card(data)
        + _budgets(data)
        + _recent(data)
    )
    unpriced = (
        '<p class="note">* some tokens had no known price: that cost is a lower bound</p>'
        if t["unpriced"]
        else ""
    ) + ('<p class="note">~ an estimated cost (see Cost confidence)</p>' if t["estimated"] else "")
    return _head("modelmix dashboard") + header + f"<main>{main}{unpriced}</main></body></html>"


def login_page(message: str) -> str:
    """The admin-key form (POSTs to /ui/login)."""
    return (
        _head("modelmix dashboard: sign in")
        + '<form class="login" method="post" action="/ui/login"><h2>modelmix dashboard</h2>'
        f'<p class="note">{escape(message)}</p>'
        '<label for="key">Admin key</label>'
        '<input id="key" name="key" type="password" autocomplete="current-password" autofocus>'
        '<button type="submit">Open dashboard</button></form></body></html>'
    )
