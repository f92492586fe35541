"""``modelmix policy``: versioned routing policies, canaries, rollbacks.

Every command works on the ledger database; a running gateway picks changes up within
``quality.policy.poll_seconds`` (default 5 s). Commands that change what serves first record
the config file's routes as a version, exactly as a gateway start does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import click
import orjson
from rich.table import Table

from modelmix.cli.quality_options import config_option, console, db_option, load
from modelmix.config import Config, ConfigError
from modelmix.ledger.db import as_location
from modelmix.quality.policy import (
    diff,
    document_yaml,
    load_policy_file,
    routes_document,
)
from modelmix.quality.policy_store import PolicyError, PolicyStore

__all__ = ["policy"]


def _when(t: float | None) -> str:
    if t is None:
        return "-"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _open(config: Config, db: str | None) -> PolicyStore:
    return PolicyStore(as_location(db) if db else config.ledger_location)


def _synced(config: Config, db: str | None) -> PolicyStore:
    store = _open(config, db)
    store.sync_file(routes_document(config.routes), "config file")
    return store


def _version_or_file(store: PolicyStore, config: Config, ident: str, message: str | None) -> str:
    """A version id, or the version of a policy file (recorded now)."""
    if Path(ident).is_file():
        try:
            routes = load_policy_file(config, ident)
        except ConfigError as exc:
            lines = "\n".join(f"  {e}" for e in exc.errors)
            raise click.ClickException(f"{exc.source}: invalid policy\n{lines}") from None
        return store.add_version(
            routes_document(routes), message or f"from {ident}", ident, store.state().live
        )
    return store.version(ident).id


def _publish(config: Config, db: str | None, store: PolicyStore) -> None:
    """Replicas with a ledger each share what serves over Redis (quality/shared_policy.py):
    publish the change made on this config's ledger, so every replica serves it within its
    poll interval."""
    from modelmix.quality.shared_policy import SharedPolicy

    shared = None if db else SharedPolicy.of(config.state, config.ledger.url is None)
    if shared is None:
        return
    try:
        if shared.publish(store):
            click.echo("published to the replicas (Redis)")
        else:
            click.echo(
                "warning: Redis unreachable; the change serves on this ledger only", err=True
            )
    finally:
        shared.close()


def _fail(exc: PolicyError) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
def policy() -> None:
    """Routing policy versions: list, show, diff, deploy, canary, rollback."""


@policy.command("list")
@config_option
@db_option
def policy_list(config_path: str | None, db: str | None) -> None:
    """Every recorded version, oldest first; marks what serves."""
    config = load(config_path)
    with _open(config, db) as store:
        state = store.state()
        versions = store.versions()
    table = Table(title="Routing policy versions")
    for col in ("version", "recorded", "serving", "routes", "message"):
        table.add_column(col)
    for v in versions:
        marks = []
        if v.id == state.live:
            marks.append("live")
        if v.id == state.canary:
            marks.append(f"canary {state.canary_share:.0%}")
        if v.id == state.file_version:
            marks.append("config file")
        names = ", ".join(r["name"] for r in v.document.get("routes", []))
        table.add_row(v.id, _when(v.created_at), ", ".join(marks), names, v.message)
    console().print(table)


@policy.command("show")
@click.argument("version", default="live")
@config_option
@db_option
def policy_show(version: str, config_path: str | None, db: str | None) -> None:
    """A version's routes as YAML (a policy file: edit it and canary it)."""
    config = load(config_path)
    with _open(config, db) as store:
        try:
            v = store.version(version)
        except PolicyError as exc:
            raise _fail(exc) from None
    click.echo(f"# policy {v.id}: {v.message} ({_when(v.created_at)})")
    click.echo(document_yaml(v.document), nl=False)


@policy.command("diff")
@click.argument("a")
@click.argument("b", default="live")
@config_option
@db_option
def policy_diff(a: str, b: str, config_path: str | None, db: str | None) -> None:
    """What changes from version (or file) A to B (default: live)."""
    config = load(config_path)
    with _synced(config, db) as store:
        try:
            va = store.version(_version_or_file(store, config, a, None))
            vb = store.version(_version_or_file(store, config, b, None))
        except PolicyError as exc:
            raise _fail(exc) from None
    text = diff(va.document, vb.document, va.id, vb.id)
    click.echo(text or f"{va.id} and {vb.id} are the same policy", nl=not text)


@policy.command("add")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("-m", "--message", default=None)
@config_option
@db_option
def policy_add(file: str, message: str | None, config_path: str | None, db: str | None) -> None:
    """Record a policy file (YAML with routes:) as a version, without deploying it."""
    config = load(config_path)
    with _synced(config, db) as store:
        vid = _version_or_file(store, config, file, message)
    click.echo(vid)


@policy.command("deploy")
@click.argument("version")
@click.option("-m", "--message", default=None)
@config_option
@db_option
def policy_deploy(
    version: str, message: str | None, config_path: str | None, db: str | None
) -> None:
    """Make a version (or policy file) live now, for all traffic (no canary)."""
    config = load(config_path)
    with _synced(config, db) as store:
        try:
            vid = _version_or_file(store, config, version, message)
            state = store.deploy(vid, reason=message or "modelmix policy deploy")
        except PolicyError as exc:
            raise _fail(exc) from None
        _publish(config, db, store)
    click.echo(f"live: {state.live}")


@policy.command("rollback")
@click.argument("version", required=False)
@config_option
@db_option
def policy_rollback(version: str | None, config_path: str | None, db: str | None) -> None:
    """Make the previously live version (or VERSION) live again; ends any canary."""
    config = load(config_path)
    with _synced(config, db) as store:
        try:
            before = store.state().live
            state = store.rollback(store.version(version).id if version else None)
        except PolicyError as exc:
            raise _fail(exc) from None
        _publish(config, db, store)
    click.echo(f"rolled back: live {before} -> {state.live}")


@policy.command("canary")
@click.argument("version")
@click.option(
    "--share",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
)
@click.option(
    "--sticky",
    type=click.Choice(["session", "user"]),
    default="session",
    show_default=True,
    help="Keep each session (or user) on one arm.",
)
@click.option("-m", "--message", default=None)
@config_option
@db_option
def policy_canary(
    version: str,
    share: float,
    sticky: str,
    message: str | None,
    config_path: str | None,
    db: str | None,
) -> None:
    """Send SHARE of the changed routes' traffic to VERSION (or a policy file); the gateway
    promotes or rolls it back on its guardrails (quality, errors, cost)."""
    config = load(config_path)
    with _synced(config, db) as store:
        try:
            vid = _version_or_file(store, config, version, message)
            state = store.start_canary(vid, share, sticky, {"message": message or ""})
        except PolicyError as exc:
            raise _fail(exc) from None
        _publish(config, db, store)
    click.echo(f"canary {state.canary} on {share:.0%} of traffic (stable {state.live})")


@policy.command("promote")
@config_option
@db_option
def policy_promote(config_path: str | None, db: str | None) -> None:
    """End the canary now: its version becomes live."""
    _end(config_path, db, "promote")


@policy.command("abort")
@config_option
@db_option
def policy_abort(config_path: str | None, db: str | None) -> None:
    """End the canary now: the stable version keeps serving."""
    _end(config_path, db, "abort")


def _end(config_path: str | None, db: str | None, action: str) -> None:
    config = load(config_path)
    with _open(config, db) as store:
        state = store.state()
        if state.canary is None:
            raise click.ClickException("no canary is running")
        store.end_canary(state.canary, action, {"reason": f"modelmix policy {action}"})
        _publish(config, db, store)
        click.echo(f"canary {state.canary}: {action}; live {store.state().live}")


@policy.command("status")
@config_option
@db_option
@click.option("--json", "as_json", is_flag=True)
def policy_status(config_path: str | None, db: str | None, as_json: bool) -> None:
    """What serves, and the running canary's guardrails as the gateway sees them."""
    from modelmix.quality.canary import decide, read_arms
    from modelmix.quality.store import QualityStore

    config = load(config_path)
    path = as_location(db) if db else config.ledger_location
    with _open(config, db) as store:
        state = store.state()
        events = store.events(10)
    verdict = None
    if state.canary is not None and state.canary_started_at is not None:
        with QualityStore(path) as quality:
            stable, candidate = read_arms(quality, state.canary, state.canary_started_at)
        looks = int(state.canary_settings.get("looks", 0))
        verdict = decide(stable, candidate, config.quality.canary, max(looks, 1))
    if as_json:
        body = {
            "live": state.live,
            "canary": state.canary,
            "share": state.canary_share,
            "sticky": state.canary_sticky,
            "verdict": verdict.as_dict() if verdict else None,
            "events": [dataclasses.asdict(e) for e in events],
        }
        click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    out = console()
    out.print(f"live: {state.live}")
    if state.canary is None:
        out.print("no canary running")
    else:
        out.print(
            f"canary: {state.canary} on {state.canary_share:.0%} ({state.canary_sticky}-sticky), "
            f"running {time.time() - (state.canary_started_at or 0):.0f} s, "
            f"{state.canary_settings.get('looks', 0)} looks"
        )
        if verdict is not None:
            _print_verdict(verdict)
    _print_events(events)


def _print_verdict(verdict: object) -> None:
    from modelmix.quality.canary import Verdict

    assert isinstance(verdict, Verdict)
    table = Table(title=f"Guardrails (one-sided, alpha {verdict.level:.4f} per look)")
    for col in ("guardrail", "stable", "candidate", "test", "z", "passes"):
        table.add_column(col)
    s, c = verdict.stable, verdict.candidate

    def fmt(x: float | None, digits: int = 3) -> str:
        return "-" if x is None else f"{x:.{digits}f}"

    rows = {
        "quality": (f"{fmt(s.quality)} (n={s.labelled})", f"{fmt(c.quality)} (n={c.labelled})"),
        "errors": (
            f"{fmt(s.error_rate)} (n={s.requests})",
            f"{fmt(c.error_rate)} (n={c.requests})",
        ),
        "cost": (f"${fmt(s.cost, 7)}", f"${fmt(c.cost, 7)}"),
    }
    for name, test in verdict.tests.items():
        z = test["z"]
        table.add_row(
            name,
            *rows[name],
            test["what"],
            "-" if z is None else f"{z:.2f}",
            "yes" if test["passed"] else ("no" if test["enough_data"] else "not enough data"),
        )
    console().print(table)
    console().print(
        f"verdict now: {verdict.action}"
        + (f" ({'; '.join(verdict.reasons)})" if verdict.reasons else "")
    )


def _print_events(events: Sequence[object]) -> None:
    from modelmix.quality.policy_store import PolicyEvent

    table = Table(title="Recent policy events")
    for col in ("at", "event", "version", "detail"):
        table.add_column(col)
    for e in events:
        assert isinstance(e, PolicyEvent)
        table.add_row(_when(e.at), e.kind, e.version or "-", _event_detail(e.detail))
    console().print(table)


def _event_detail(detail: dict[str, object]) -> str:
    """An event's detail in words: where from, why (a verdict's reasons), the share."""
    parts = []
    if detail.get("from"):
        parts.append(f"from {detail['from']}")
    stable, candidate = detail.get("stable"), detail.get("candidate")
    if isinstance(stable, str):
        parts.append(f"stable {stable}")
    elif isinstance(stable, dict) and isinstance(candidate, dict):
        parts.append(f"{stable.get('requests')} vs {candidate.get('requests')} requests")
    if detail.get("share"):
        parts.append(f"share {detail['share']}")
    reasons = detail.get("reasons")
    if isinstance(reasons, list) and reasons:
        parts.append("; ".join(str(r) for r in reasons))
    elif detail.get("reason"):
        parts.append(str(detail["reason"]))
    return ", ".join(parts) or "-"


@policy.command("log")
@config_option
@db_option
@click.option("-n", "--limit", default=20, show_default=True)
def policy_log(config_path: str | None, db: str | None, limit: int) -> None:
    """Policy events, newest first: deploys, canaries, promotions, rollbacks."""
    config = load(config_path)
    with _open(config, db) as store:
        _print_events(store.events(limit))
