"""``modelmix logs``, ``modelmix report`` and ``modelmix keys``: read the ledger, manage keys."""

from __future__ import annotations

import re
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, NoReturn

import click
import orjson
from rich.console import Console
from rich.table import Table

from modelmix.keys import KeyStore
from modelmix.ledger.queries import LedgerNotFound, recent_requests, spend_report
from modelmix.paths import default_db_path

__all__ = ["keys", "logs", "report"]

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
        help="Ledger database (default: $MODELMIX_HOME/ledger.db or ./.modelmix/ledger.db).",
    )(f)


def _resolve_db(db: str | None, config_path: str | None) -> Path:
    if db:
        return Path(db)
    if config_path:
        from modelmix.config import ConfigError, load_config

        try:
            return load_config(config_path).ledger_path
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


def _money(value: Decimal | None, unpriced: bool = False) -> str:
    if value is None:
        return "?"
    text = f"${value:.6f}" if value < 1 else f"${value:,.4f}"
    return text + ("*" if unpriced else "")


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"


def attempt_chain(attempts: list[dict[str, Any]]) -> str:
    """``a:429 -> b:ok``: each attempt's model and outcome."""
    parts = []
    for a in attempts:
        if a["status"] == "ok":
            outcome = "ok"
        elif a["status"] == "cut":
            outcome = "cut"
        else:
            outcome = str(a["http_status"] or a["error_kind"] or a["status"])
        parts.append(f"{a['model']}:{outcome}")
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
def logs(
    db: str | None,
    config_path: str | None,
    limit: int,
    route: str | None,
    model: str | None,
    as_json: bool,
) -> None:
    """Show the latest requests, newest first."""
    path = _resolve_db(db, config_path)
    try:
        rows = recent_requests(path, limit=limit, route=route, model=model)
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
            attempt_chain(r["attempts"]),
            f"{r['prompt_tokens']:,}/{r['completion_tokens']:,}",
            _money(r["cost_usd"], r["unpriced"]),
            _ms(r["latency_ms"]),
        )
    console = _console()
    console.print(table)
    if any(r["unpriced"] for r in rows):
        console.print("* some tokens had no known price; the cost shown is a lower bound")


# -- report ------------------------------------------------------------------------------


@click.command()
@_db_option
@click.option(
    "--by",
    "group_by",
    type=click.Choice(["model", "route", "key", "day"]),
    default="model",
    show_default=True,
)
@click.option("--since", default=None, help="Only since: 24h, 7d, 30m... or an ISO date (UTC).")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def report(
    db: str | None, config_path: str | None, group_by: str, since: str | None, as_json: bool
) -> None:
    """Spend, errors, tokens and latency, grouped by model, route, key or day."""
    path = _resolve_db(db, config_path)
    since_ts = parse_since(since) if since else None
    try:
        rows = spend_report(path, since=since_ts, group_by=group_by)  # type: ignore[arg-type]
    except LedgerNotFound as exc:
        _fail_no_ledger(exc)
    if as_json:
        _echo_json(rows)
        return
    if not rows:
        click.echo("no requests in that period")
        return
    span = f"since {since}" if since else "all time"
    table = Table(
        title=f"spend by {group_by}, {span} ({path})", title_justify="left", show_footer=True
    )
    total_req = sum(r["requests"] for r in rows)
    total_err = sum(r["errors"] for r in rows)
    total_in = sum(r["prompt_tokens"] for r in rows)
    total_out = sum(r["completion_tokens"] for r in rows)
    total_cost = sum((r["cost_usd"] for r in rows), Decimal(0))
    any_unpriced = any(r["unpriced"] for r in rows)
    label = {"day": "day (UTC)"}.get(group_by, group_by)
    table.add_column(label, footer="total")
    if group_by == "key":
        table.add_column("name")
    table.add_column("requests", justify="right", footer=f"{total_req:,}")
    table.add_column("errors", justify="right", footer=f"{total_err:,}")
    table.add_column("tokens in", justify="right", footer=f"{total_in:,}")
    table.add_column("tokens out", justify="right", footer=f"{total_out:,}")
    table.add_column("cost", justify="right", footer=_money(total_cost, any_unpriced))
    table.add_column("avg", justify="right")
    table.add_column("p50", justify="right")
    table.add_column("p95", justify="right")
    for r in rows:
        cells = [r["group"]]
        if group_by == "key":
            cells.append(r.get("name") or "-")
        cells += [
            f"{r['requests']:,}",
            f"{r['errors']:,}",
            f"{r['prompt_tokens']:,}",
            f"{r['completion_tokens']:,}",
            _money(r["cost_usd"], bool(r["unpriced"])),
            _ms(r["avg_latency_ms"]),
            _ms(r["p50_latency_ms"]),
            _ms(r["p95_latency_ms"]),
        ]
        table.add_row(*cells)
    console = _console()
    console.print(table)
    if any_unpriced:
        console.print("* some tokens had no known price; the cost shown is a lower bound")


# -- keys --------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Manage virtual API keys (stored as hashes in the ledger database)."""


def _store(db: str | None, config_path: str | None) -> KeyStore:
    return KeyStore(_resolve_db(db, config_path))


@keys.command("create")
@click.argument("name")
@_db_option
def keys_create(name: str, db: str | None, config_path: str | None) -> None:
    """Create a key called NAME and print it (the only time it is shown)."""
    store = _store(db, config_path)
    try:
        info, plaintext = store.create(name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(f"created key {info.id} ({info.name})")
    click.echo(plaintext)
    click.echo("store it now: it cannot be shown again", err=True)


@keys.command("list")
@_db_option
def keys_list(db: str | None, config_path: str | None) -> None:
    """List keys (never their secrets)."""
    store = _store(db, config_path)
    try:
        infos = store.list()
    finally:
        store.close()
    if not infos:
        click.echo("no keys")
        return
    table = Table(title="virtual keys", title_justify="left")
    for col in ("id", "name", "prefix", "created", "status"):
        table.add_column(col)
    for k in infos:
        table.add_row(
            k.id,
            k.name,
            k.prefix + "…",
            datetime.fromtimestamp(k.created_at).strftime("%Y-%m-%d %H:%M"),
            "[red]revoked[/red]" if k.revoked else "active",
        )
    _console().print(table)


@keys.command("revoke")
@click.argument("id_or_name")
@_db_option
def keys_revoke(id_or_name: str, db: str | None, config_path: str | None) -> None:
    """Revoke a key by id or name (a running gateway notices within 5 seconds)."""
    store = _store(db, config_path)
    try:
        ok = store.revoke(id_or_name)
    finally:
        store.close()
    if not ok:
        raise click.ClickException(f"no active key with id or name {id_or_name!r}")
    click.echo(f"revoked {id_or_name}")
