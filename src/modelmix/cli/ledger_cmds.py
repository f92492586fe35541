"""``modelmix logs`` and ``modelmix report``: read the ledger (``modelmix keys``: keys_cmds.py)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NoReturn

import click
import orjson
from rich.console import Console
from rich.table import Table

from modelmix.cli.request_detail import detail_lines, failure_line
from modelmix.ledger.db import Location, as_location, display
from modelmix.ledger.queries import GROUP_BYS, LedgerNotFound, get_request, recent_requests
from modelmix.paths import default_db_path

__all__ = ["logs", "report"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def _db_option(f: Any) -> Any:
    f = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="Config file whose ledger to use.",
    )(f)
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False),
        help="Ledger database (default: the running gateway's, see modelmix.paths).",
    )(f)


def _resolve_db(db: str | None, config_path: str | None) -> Location:
    if db:
        return as_location(db)
    if config_path:
        from modelmix.config import ConfigError, load_config

        try:
            return load_config(config_path).ledger_location
        except ConfigError as exc:
            raise click.ClickException(f"{exc.source}: invalid configuration") from None
    return default_db_path()


def parse_since(value: str, *, now: float | None = None) -> float:
    """``24h``, ``30m``, ``7d``, ``2w`` (ago) or an ISO date/time (naive means UTC) -> unix s."""
    m = _DURATION.match(value)
    if m:
        now = time.time() if now is None else now
        return now - float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r}: use a duration like 24h, 7d, 30m, or an ISO date like 2025-01-31"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def _echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, default=_json_default, option=orjson.OPT_INDENT_2).decode())


def _money(value: Decimal | None, unpriced: bool = False, estimated: bool = False) -> str:
    """``$0.001234``; ``*``: a lower bound (unknown prices), ``~``: an estimate."""
    if value is None:
        return "?"
    text = f"${value:.6f}" if value < 1 else f"${value:,.4f}"
    return text + ("*" if unpriced else "~" if estimated else "")


_UNPRICED_NOTE = "* some tokens had no known price; the cost shown is a lower bound"
_ESTIMATED_NOTE = (
    "~ some costs are estimates (a price matched by model name or billing more than the usage "
    "shows, or a stream that ended before the upstream reported its usage)"
)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def attempt_chain(attempts: list[dict[str, Any]], skipped: Sequence[dict[str, Any]] = ()) -> str:
    """``a:429 -> b:cooling down -> c:ok``: each attempt's model and outcome, and where the
    engine passed a model over without calling it (the decision's ``skipped``)."""
    parts = []
    skips = sorted(skipped, key=lambda s: s.get("at_attempt", 0))
    for i, a in enumerate(attempts):
        while skips and skips[0].get("at_attempt", 0) <= i:
            skip = skips.pop(0)
            parts.append(f"{skip['model']}:{skip['reason']}")
        if a["status"] == "ok":
            outcome = "ok"
        elif a["status"] == "cut":
            outcome = "cut"
        else:
            outcome = str(a["http_status"] or a["error_kind"] or a["status"])
        parts.append(f"{a['model']}:{outcome}")
    parts += [f"{skip['model']}:{skip['reason']}" for skip in skips]
    return " -> ".join(parts) or "-"


def _console() -> Console:
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _fail_no_ledger(exc: LedgerNotFound) -> NoReturn:
    raise click.ClickException(f"{exc}. Has the gateway run yet? (use --db to pick a file)")


# -- logs --------------------------------------------------------------------------------


@click.command()
@_db_option
@click.option("-n", "--limit", default=20, show_default=True, help="How many requests.")
@click.option("--route", default=None, help="Only requests to this route.")
@click.option("--model", default=None, help="Only requests asking for or answered by MODEL.")
@click.option("--json", "as_json", is_flag=True, help="JSON output (with the full attempts).")
@click.option("--failed", is_flag=True, help="Only requests that failed, with why.")
@click.argument("request_id", required=False)
def logs(
    db: str | None,
    config_path: str | None,
    limit: int,
    route: str | None,
    model: str | None,
    as_json: bool,
    failed: bool,
    request_id: str | None,
) -> None:
    """Show the latest requests, newest first; with REQUEST_ID, that request in full (what it
    asked for, each attempt, why it failed)."""
    path = _resolve_db(db, config_path)
    if request_id is not None:
        _one_request(path, request_id, as_json)
        return
    try:
        rows = recent_requests(path, limit=limit, route=route, model=model, failed=failed)
    except LedgerNotFound as exc:
        _fail_no_ledger(exc)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no requests recorded yet")
        return
    table = Table(title=f"latest {len(rows)} requests ({path})", title_justify="left")
    for name, justify in (
        ("time", "left"),
        ("id", "left"),
        ("asked", "left"),
        ("model", "left"),
        ("status", "left"),
        ("attempts", "left"),
        ("tokens in/out", "right"),
        ("cost", "right"),
        ("latency", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        started = datetime.fromtimestamp(r["started_at"]).strftime("%Y-%m-%d %H:%M:%S")
        asked = r["requested_model"] + (" (route)" if r["route"] else "")
        status = "ok" if r["status"] == "ok" else f"[red]{r['http_status']}[/red]"
        table.add_row(
            started,
            r["id"],
            asked,
            r["final_model"] or "-",
            status,
            attempt_chain(r["attempts"], r["decision"].get("skipped", [])),
            f"{r['prompt_tokens']:,}/{r['completion_tokens']:,}",
            _money(r["cost_usd"], r["unpriced"], r.get("cost_confidence") == "estimated"),
            _ms(r["latency_ms"]),
        )
    console = _console()
    console.print(table)
    for r in rows:  # issue 12: say why each failed request failed
        if r["status"] != "ok":
            console.print(failure_line(r), markup=False, highlight=False)
    if any(r["status"] != "ok" for r in rows):
        console.print("(modelmix logs ID shows one request in full)")
    if any(r["unpriced"] for r in rows):
        console.print(_UNPRICED_NOTE)
    if any(r.get("cost_confidence") == "estimated" for r in rows):
        console.print(_ESTIMATED_NOTE)


def _one_request(path: Location, request_id: str, as_json: bool) -> None:
    try:
        row = get_request(path, request_id)
    except LedgerNotFound as exc:
        _fail_no_ledger(exc)
    if row is None:
        raise click.ClickException(f"no request {request_id!r} in {path}")
    if as_json:
        _echo_json(row)
        return
    for line in detail_lines(row):
        click.echo(line)


# -- report ------------------------------------------------------------------------------

_LABELS = {"day": "day (UTC)", "hour": "hour (UTC)"}


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _spend_table(group_by: str, rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, title_justify="left", show_footer=True)
    total_req = sum(r["requests"] for r in rows)
    total_cost = sum((r["cost_usd"] for r in rows), Decimal(0))
    any_unpriced = any(r["unpriced"] for r in rows)
    any_estimated = any(r.get("estimated") for r in rows)
    footer = group_by != "tag"  # a request counts under each of its tags: no grand total
    table.add_column(_LABELS.get(group_by, group_by), footer="total" if footer else "")
    if group_by == "key":
        table.add_column("name")
    table.add_column("requests", justify="right", footer=f"{total_req:,}" if footer else "")
    table.add_column("errors", justify="right")
    table.add_column("fallbacks", justify="right")
    table.add_column("escalated", justify="right")
    table.add_column("tokens in", justify="right")
    table.add_column("tokens out", justify="right")
    table.add_column(
        "cost",
        justify="right",
        footer=_money(total_cost, any_unpriced, any_estimated) if footer else "",
    )
    table.add_column("avg", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    for r in rows:
        cells = [r["group"]]
        if group_by == "key":
            cells.append(r.get("name") or "-")
        escalated = f"{r['escalations']}/{r['cascade_requests']}" if r["cascade_requests"] else "-"
        cells += [
            f"{r['requests']:,}",
            f"{r['errors']:,} ({_rate(r['error_rate'])})" if r["errors"] else "0",
            f"{r['fallbacks']:,} ({_rate(r['fallback_rate'])})" if r["fallbacks"] else "0",
            escalated,
            f"{r['prompt_tokens']:,}",
            f"{r['completion_tokens']:,}",
            _money(r["cost_usd"], bool(r["unpriced"]), bool(r.get("estimated"))),
            _ms(r["avg_latency_ms"]),
            _ms(r["p50_latency_ms"]),
            _ms(r["p95_latency_ms"]),
        ]
        table.add_row(*cells)
    return table


def _savings_table(savings: dict[str, Any]) -> Table:
    table = Table(
        title="savings against each route's baseline model", title_justify="left", show_footer=True
    )
    total = savings["total"]
    table.add_column("route", footer="total")
    table.add_column("baseline")
    table.add_column("requests", justify="right")
    table.add_column("on baseline", justify="right")
    table.add_column("actual", justify="right", footer=_money(total["actual_cost_usd"]))
    table.add_column("on baseline cost", justify="right", footer=_money(total["baseline_cost_usd"]))
    table.add_column("saved", justify="right", footer=_money(total["saved_usd"]))
    table.add_column("saved %", justify="right", footer=_rate(total["saved_pct"]))
    measured = any(r.get("quality") for r in savings["routes"])
    if measured:  # from a QualitySource (evals, feedback)
        table.add_column("quality (baseline)", justify="right")
    for r in savings["routes"]:
        q = r.get("quality")
        extra = []
        if measured:
            extra = [_quality(q)]
        table.add_row(
            r["route"],
            r["baseline"] or f"- ({r['baseline_reason']})",
            f"{r['requests']:,}",
            f"{r['on_baseline']:,}",
            _money(r["actual_cost_usd"], bool(r["unpriced"])),
            _money(r["baseline_cost_usd"]),
            _money(r["saved_usd"]),
            _rate(r["saved_pct"]),
            *extra,
        )
    return table


def _quality(q: dict[str, Any] | None) -> str:
    if not q:
        return "-"
    text = f"{q['quality']:.2f}"
    if q.get("baseline_quality") is not None:
        text += f" ({q['baseline_quality']:.2f})"
    return text + (f", n={q['samples']:,}" if q.get("samples") else "")


def _baselines(config_path: str | None) -> dict[str, Any]:
    from modelmix.cli.quality_options import load_or_default
    from modelmix.config import ConfigError
    from modelmix.reports import model_prices, route_baselines

    try:
        config = load_or_default(config_path)
    except ConfigError as exc:
        raise click.ClickException(f"{exc.source}: invalid configuration") from None
    return route_baselines(config, model_prices(config))


def _write_export(target: str, write: Any) -> None:
    if target == "-":
        write(sys.stdout)
        return
    with open(target, "w", encoding="utf-8", newline="") as f:
        write(f)
    click.echo(f"wrote {target}", err=True)


@click.command()
@_db_option
@click.option(
    "--by",
    "group_bys",
    type=click.Choice([*GROUP_BYS, "all"]),
    multiple=True,
    help="Grouping(s), repeatable: key, team, tag, model, route, day, hour, or all "
    "(default: model).",
)
@click.option("--since", default=None, help="Only since: 24h, 7d, 30m... or an ISO date (UTC).")
@click.option("--until", default=None, help="Only before: a duration ago or an ISO date (UTC).")
@click.option(
    "--savings",
    is_flag=True,
    help="Also show savings against each route's baseline model (exports always include them).",
)
@click.option(
    "--json",
    "json_out",
    is_flag=False,
    flag_value="-",
    default=None,
    metavar="FILE",
    help="Export the full report as JSON to FILE (no FILE or '-': standard output).",
)
@click.option(
    "--csv",
    "csv_out",
    default=None,
    metavar="FILE",
    help="Export the tables as one long CSV to FILE ('-': standard output).",
)
def report(
    db: str | None,
    config_path: str | None,
    group_bys: tuple[str, ...],
    since: str | None,
    until: str | None,
    savings: bool,
    json_out: str | None,
    csv_out: str | None,
) -> None:
    """Spend, tokens, errors, fallbacks, cascade escalations, latency and savings.

    Money is exact: JSON and CSV carry decimal strings. Savings re-price each answered request
    on its route's baseline model (``baseline`` in the route's config, else its most expensive
    model by output price), using the config given with --config (else the default one).
    """
    from modelmix.reports import build_report, write_csv

    path = _resolve_db(db, config_path)
    since_ts = parse_since(since) if since else None
    until_ts = parse_since(until) if until else None
    chosen = list(GROUP_BYS) if "all" in group_bys else list(dict.fromkeys(group_bys or ["model"]))
    exporting = json_out is not None or csv_out is not None
    baselines = _baselines(config_path) if (savings or exporting) else None
    try:
        data = build_report(
            path,
            since=since_ts,
            until=until_ts,
            group_bys=list(GROUP_BYS) if exporting else chosen,
            baselines=baselines,
        )
    except LedgerNotFound as exc:
        _fail_no_ledger(exc)
    if json_out is not None:
        _write_export(
            json_out,
            lambda f: f.write(
                orjson.dumps(data, default=_json_default, option=orjson.OPT_INDENT_2).decode()
                + "\n"
            ),
        )
    if csv_out is not None:
        _write_export(csv_out, lambda f: write_csv(data, f))
    if "-" in (json_out, csv_out):
        return
    t = data["totals"]
    if not t["requests"]:
        click.echo("no requests in that period")
        return
    span = f"since {since}" if since else "all time"
    if until:
        span += f", until {until}"
    console = _console()
    escalated = (
        f"{t['escalations']:,} of {t['cascade_requests']:,} cascade requests escalated "
        f"({_rate(t['escalation_rate'])})"
        if t["cascade_requests"]
        else "no cascade requests"
    )
    console.print(
        f"[bold]{t['requests']:,} requests[/bold], {span} ({display(path)}): cost "
        f"{_money(t['cost_usd'], bool(t['unpriced']), bool(t['estimated']))}, "
        f"{t['total_tokens']:,} tokens "
        f"({t['prompt_tokens']:,} in, {t['completion_tokens']:,} out); errors "
        f"{t['errors']:,} ({_rate(t['error_rate'])}), fallbacks {t['fallbacks']:,} "
        f"({_rate(t['fallback_rate'])}); {escalated}; latency p50 {_ms(t['p50_latency_ms'])}, "
        f"p95 {_ms(t['p95_latency_ms'])}, p99 {_ms(t['p99_latency_ms'])}"
    )
    hits = data["response_cache"]
    if hits["hits"]:
        console.print(
            f"response cache: {hits['hits']:,} hits ({hits['exact']:,} exact, "
            f"{hits['semantic']:,} semantic), saved {_money(hits['saved_usd'], False, False)}"
        )
    for g in chosen:
        title = f"spend by {g}" + (
            " (a request counts under each of its tags)" if g == "tag" else ""
        )
        console.print(_spend_table(g, data["by"][g], title))
    if "team" in chosen:
        from modelmix.cli.personal_cmds import print_team_offsets

        print_team_offsets(path)
    if "route" in chosen:
        from modelmix.cli.explore_report import print_exploration

        print_exploration(path)
    if savings and data["savings"] is not None:
        console.print(_savings_table(data["savings"]))
        if data["savings"]["unrouted"]["requests"]:
            u = data["savings"]["unrouted"]
            console.print(
                f"{u['requests']:,} requests named a model directly (no route, no baseline): "
                f"{_money(u['cost_usd'])}"
            )
        console.print(f"quality: {data['savings']['quality']['note']}")
    if t["unpriced"]:
        console.print(_UNPRICED_NOTE)
    if t["estimated"]:
        console.print(_ESTIMATED_NOTE)
