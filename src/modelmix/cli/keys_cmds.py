"""``modelmix keys``: create, list, show, update, rotate and revoke virtual API keys.

Budgets are written ``KIND:PERIOD:USD``: ``hard:month:100``, ``soft:day:5``,
``paced:month:300``; a custom period is ``START..END`` in ISO dates (UTC):
``hard:2025-06-01..2025-07-01:50``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import click
import orjson
from rich.console import Console
from rich.table import Table

from modelmix.budgets.definitions import BudgetSpec
from modelmix.ledger.db import as_location
from modelmix.ledger.keys import KeyInfo, KeyStore
from modelmix.paths import default_db_path

__all__ = ["keys", "parse_budget"]


def parse_budget(text: str) -> dict[str, Any]:
    """``KIND:PERIOD:USD`` -> a budget document (see the module docstring)."""
    parts = text.strip().split(":")
    if len(parts) != 3:
        raise click.BadParameter(f"{text!r}: expected KIND:PERIOD:USD, e.g. hard:month:100")
    kind, period, amount = (p.strip() for p in parts)
    if kind not in ("hard", "soft", "paced"):
        raise click.BadParameter(f"{text!r}: kind must be hard, soft or paced")
    try:
        limit = Decimal(amount)
    except InvalidOperation:
        raise click.BadParameter(f"{text!r}: {amount!r} is not an amount in USD") from None
    doc: dict[str, Any] = {"kind": kind, "limit_usd": amount}
    if ".." in period:
        start, _, end = period.partition("..")
        try:
            doc["start"] = _iso(start)
            doc["end"] = _iso(end)
        except ValueError:
            raise click.BadParameter(f"{text!r}: custom period must be START..END dates") from None
        doc["period"] = "custom"
    elif period in ("day", "month", "total"):
        doc["period"] = period
    else:
        raise click.BadParameter(f"{text!r}: period must be day, month, total or START..END")
    if not limit.is_finite() or limit < 0:
        raise click.BadParameter(f"{text!r}: the amount must be >= 0")
    return doc


def _iso(value: str) -> float:
    d = datetime.fromisoformat(value.strip())
    if d.tzinfo is None:
        d = d.replace(tzinfo=UTC)
    return d.timestamp()


def _budget_text(b: BudgetSpec) -> str:
    if b.period == "custom" and b.start is not None and b.end is not None:
        fmt = "%Y-%m-%d"
        period = (
            f"{datetime.fromtimestamp(b.start, UTC).strftime(fmt)}.."
            f"{datetime.fromtimestamp(b.end, UTC).strftime(fmt)}"
        )
    else:
        period = b.period
    return f"{b.kind}:{period}:{b.limit_usd.normalize():f}"


def _store(db: str | None, config_path: str | None) -> KeyStore:
    if db:
        return KeyStore(as_location(db))
    if config_path:
        from modelmix.config import ConfigError, load_config

        try:
            return KeyStore(load_config(config_path).ledger_location)
        except ConfigError as exc:
            raise click.ClickException(f"{exc.source}: invalid configuration") from None
    return KeyStore(default_db_path())


def _db_options(f: Any) -> Any:
    f = click.option(
        "--config", "config_path", type=click.Path(dir_okay=False), help="Use this config's ledger."
    )(f)
    return click.option(
        "--db",
        type=click.Path(dir_okay=False),
        help="Ledger database (default: the running gateway's, see modelmix.paths).",
    )(f)


def _setting_options(f: Any) -> Any:
    for decl, kwargs in reversed(
        [
            ("--owner", {"help": "Who the key belongs to."}),
            ("--team", {"help": "Team the key's spend counts against."}),
            ("--tag", {"multiple": True, "help": "Tag for spend attribution (repeatable)."}),
            (
                "--allowed-tag",
                {
                    "multiple": True,
                    "help": "Tag the key may set on requests and spend from that tag's budgets "
                    "(repeatable, * wildcards, e.g. 'project:*').",
                },
            ),
            (
                "--model",
                {
                    "multiple": True,
                    "help": "Model or route the key may use (repeatable, * wildcards; none: any).",
                },
            ),
            (
                "--budget",
                {"multiple": True, "help": "KIND:PERIOD:USD, e.g. hard:month:100 (repeatable)."},
            ),
            ("--rpm", {"type": click.IntRange(min=1), "help": "Requests per minute."}),
            ("--tpm", {"type": click.IntRange(min=1), "help": "Tokens per minute."}),
        ]
    ):
        f = click.option(decl, **kwargs)(f)  # type: ignore[arg-type]
    return f


def _console() -> Console:
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 200)


def _echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


def _describe(info: KeyInfo) -> None:
    rows = [
        ("id", info.id),
        ("name", info.name),
        ("prefix", info.prefix + "…"),
        ("status", "revoked" if info.revoked else "active"),
        ("owner", info.owner or "-"),
        ("team", info.team or "-"),
        ("tags", ", ".join(info.tags) or "-"),
        ("models", ", ".join(info.allowed_models) or "any"),
        ("may tag", ", ".join(info.allowed_tags) or "-"),
        ("budgets", ", ".join(_budget_text(b) for b in info.budgets) or "-"),
        ("rate limits", _limits_text(info)),
    ]
    for label, value in rows:
        click.echo(f"{label:>12}: {value}")


def _limits_text(info: KeyInfo) -> str:
    r = info.rate_limit
    if r is None:
        return "-"
    parts = []
    if r.rpm:
        parts.append(f"{r.rpm} req/min")
    if r.tpm:
        parts.append(f"{r.tpm} tok/min")
    return ", ".join(parts)


def _rate_limit(rpm: int | None, tpm: int | None) -> dict[str, int] | None:
    if rpm is None and tpm is None:
        return None
    d = {}
    if rpm is not None:
        d["rpm"] = rpm
    if tpm is not None:
        d["tpm"] = tpm
    return d


@click.group()
def keys() -> None:
    """Manage virtual API keys (stored as hashes in the ledger database)."""


@keys.command("create")
@click.argument("name")
@_setting_options
@_db_options
@click.option("--json", "as_json", is_flag=True, help="JSON output (includes the key).")
def keys_create(
    name: str,
    owner: str | None,
    team: str | None,
    tag: Sequence[str],
    allowed_tag: Sequence[str],
    model: Sequence[str],
    budget: Sequence[str],
    rpm: int | None,
    tpm: int | None,
    db: str | None,
    config_path: str | None,
    as_json: bool,
) -> None:
    """Create a key called NAME and print it (the only time it is shown)."""
    budgets = [parse_budget(b) for b in budget]
    store = _store(db, config_path)
    try:
        info, plaintext = store.create(
            name,
            owner=owner,
            team=team,
            tags=tag,
            allowed_tags=allowed_tag,
            allowed_models=model,
            budgets=budgets,
            rate_limit=_rate_limit(rpm, tpm),
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    if as_json:
        _echo_json({**info.to_dict(), "key": plaintext})
        return
    click.echo(f"created key {info.id} ({info.name})")
    click.echo(plaintext)
    click.echo("store it now: it cannot be shown again", err=True)


@keys.command("list")
@_db_options
@click.option("--active", is_flag=True, help="Hide revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def keys_list(db: str | None, config_path: str | None, active: bool, as_json: bool) -> None:
    """List keys (never their secrets)."""
    store = _store(db, config_path)
    try:
        infos = store.list(include_revoked=not active)
    finally:
        store.close()
    if as_json:
        _echo_json([k.to_dict() for k in infos])
        return
    if not infos:
        click.echo("no keys")
        return
    table = Table(title="virtual keys", title_justify="left")
    for col in ("id", "name", "prefix", "owner", "team", "tags", "budgets", "limits", "status"):
        table.add_column(col)
    for k in infos:
        table.add_row(
            k.id,
            k.name,
            k.prefix + "…",
            k.owner or "-",
            k.team or "-",
            ", ".join(k.tags) or "-",
            ", ".join(_budget_text(b) for b in k.budgets) or "-",
            _limits_text(k),
            "[red]revoked[/red]" if k.revoked else "active",
        )
    _console().print(table)


@keys.command("show")
@click.argument("id_or_name")
@_db_options
@click.option("--json", "as_json", is_flag=True, help="JSON output.")
def keys_show(id_or_name: str, db: str | None, config_path: str | None, as_json: bool) -> None:
    """Show one key's settings."""
    store = _store(db, config_path)
    try:
        info = store.get(id_or_name)
    finally:
        store.close()
    if info is None:
        raise click.ClickException(f"no key with id or name {id_or_name!r}")
    if as_json:
        _echo_json(info.to_dict())
    else:
        _describe(info)


@keys.command("update")
@click.argument("id_or_name")
@click.option("--name", "new_name", help="Rename the key.")
@_setting_options
@click.option("--clear-tags", is_flag=True, help="Remove every tag.")
@click.option("--clear-models", is_flag=True, help="Allow every model again.")
@click.option("--clear-budgets", is_flag=True, help="Remove every budget.")
@click.option("--clear-rate-limits", is_flag=True, help="Remove the rate limits.")
@_db_options
def keys_update(
    id_or_name: str,
    new_name: str | None,
    owner: str | None,
    team: str | None,
    tag: Sequence[str],
    allowed_tag: Sequence[str],
    model: Sequence[str],
    budget: Sequence[str],
    rpm: int | None,
    tpm: int | None,
    clear_tags: bool,
    clear_models: bool,
    clear_budgets: bool,
    clear_rate_limits: bool,
    db: str | None,
    config_path: str | None,
) -> None:
    """Change a key's settings. Given lists (--tag, --model, --budget) replace the old ones;
    --owner '' / --team '' clear those. A running gateway notices within 5 seconds."""
    store = _store(db, config_path)
    try:
        old = store.get(id_or_name)
        if old is None or old.revoked:
            raise click.ClickException(f"no active key with id or name {id_or_name!r}")
        limits: dict[str, int] | None = None
        if clear_rate_limits:
            limits = {}
        elif rpm is not None or tpm is not None:
            current = old.rate_limit.to_dict() if old.rate_limit else {}
            limits = {**current, **(_rate_limit(rpm, tpm) or {})}
        info = store.update(
            id_or_name,
            name=new_name,
            owner=owner,
            team=team,
            tags=[] if clear_tags else (tag or None),
            allowed_tags=allowed_tag or None,
            allowed_models=[] if clear_models else (model or None),
            budgets=[] if clear_budgets else ([parse_budget(b) for b in budget] or None),
            rate_limit=limits,
        )
    except (ValueError, KeyError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(f"updated {info.id} ({info.name})")
    _describe(info)


@keys.command("rotate")
@click.argument("id_or_name")
@_db_options
def keys_rotate(id_or_name: str, db: str | None, config_path: str | None) -> None:
    """Give a key a new secret (same id, settings and spend) and print it. The old secret
    stops working (a running gateway notices within 5 seconds)."""
    store = _store(db, config_path)
    try:
        info, plaintext = store.rotate(id_or_name)
    except KeyError:
        raise click.ClickException(f"no active key with id or name {id_or_name!r}") from None
    finally:
        store.close()
    click.echo(f"rotated key {info.id} ({info.name})")
    click.echo(plaintext)
    click.echo("store it now: it cannot be shown again", err=True)


@keys.command("revoke")
@click.argument("id_or_name")
@_db_options
def keys_revoke(id_or_name: str, db: str | None, config_path: str | None) -> None:
    """Revoke a key by id or name (a running gateway notices within 5 seconds)."""
    store = _store(db, config_path)
    try:
        found = store.get(id_or_name)
        ok = store.revoke(id_or_name)
    finally:
        store.close()
    if not ok:
        raise click.ClickException(f"no active key with id or name {id_or_name!r}")
    click.echo(f"revoked {id_or_name}")
    if config_path is None or found is None:
        return
    from modelmix.config import load_config
    from modelmix.state.events import publish_revocation

    state = load_config(config_path).state  # (valid: _store loaded it)
    if state.redis_url:
        publish_revocation(state, found.id)  # replicas sharing Redis refuse it at once
        click.echo("every replica sharing its Redis was told", err=True)
