"""``modelmix policy personal``: per-subject personalisation of the learned router.

``show`` lists every subject's offset and the evidence behind it; ``refresh`` re-estimates from
the ledger now (a running gateway does it every ``quality.personal.refresh_seconds``);
``reset SUBJECT`` forgets a subject's offset (only later feedback counts); ``disable`` /
``enable`` stop and resume applying one subject's offset, or everyone's (``*``), keeping it.
``modelmix report --by team`` prints the teams' offsets with ``personal_table``.
"""

from __future__ import annotations

import re

import click
from rich.table import Table

from modelmix.cli.quality_options import config_option, console, db_option, load
from modelmix.ledger.db import Location, as_location
from modelmix.personal.store import ALL, PersonalStore, team_offsets

__all__ = ["personal", "personal_table"]

_SUBJECT = re.compile(r"^(\*|(user|key|team|tag):.+)$")


def _store(config_path: str | None, db: str | None) -> PersonalStore:
    return PersonalStore(as_location(db) if db else load(config_path).ledger_location)


def _subject(value: str) -> str:
    if not _SUBJECT.match(value):
        raise click.BadParameter("a subject is user:ID, key:ID, team:NAME, tag:TAG or '*'")
    return value


def personal_table(rows: list[dict[str, object]], title: str) -> Table:
    table = Table(title=title)
    for name in ("subject", "offset", "uncapped", "labelled", "predicted", "accepted", "state"):
        table.add_column(name, justify="left" if name in ("subject", "state") else "right")
    for r in rows:
        state = "disabled" if r["disabled"] else "on"
        table.add_row(
            str(r["subject"]),
            f"{float(str(r['logit_offset'])):+.3f}",
            f"{float(str(r['raw'])):+.3f}",
            str(r["n"]),
            f"{float(str(r['predicted'])):.3f}",
            f"{float(str(r['accepted'])):.3f}",
            state,
        )
    return table


def print_team_offsets(location: Location) -> None:
    """The teams' rows of ``personal_offsets`` (nothing when personalisation never ran)."""
    rows = team_offsets(location)
    if rows:
        title = "personalised routing by team (offset on the log-odds of P(good))"
        console().print(personal_table(rows, title))


@click.group()
def personal() -> None:
    """Per user, key, team or tag offsets of the learned router: show, reset, disable."""


@personal.command("show")
@config_option
@db_option
def personal_show(config_path: str | None, db: str | None) -> None:
    """Every subject's offset and the feedback behind it."""
    store = _store(config_path, db)
    try:
        rows = store.rows()
    finally:
        store.close()
    if not rows:
        click.echo("no personalisation yet")
        return
    console().print(personal_table(rows, "personalised routing"))


@personal.command("refresh")
@config_option
@db_option
def personal_refresh(config_path: str | None, db: str | None) -> None:
    """Re-estimate every subject's offset from the ledger now."""
    cfg = load(config_path).quality.personal
    store = _store(config_path, db)
    try:
        found = store.refresh(cfg.prior_strength, cfg.cap, cfg.lookback_hours * 3600.0)
    finally:
        store.close()
    click.echo(f"{len(found)} subjects re-estimated")


@personal.command("reset")
@click.argument("subject", callback=lambda _c, _p, v: _subject(v))
@config_option
@db_option
def personal_reset(subject: str, config_path: str | None, db: str | None) -> None:
    """Forget SUBJECT's offset: it routes as the global router until new feedback."""
    if subject == ALL:
        raise click.BadParameter("reset one subject at a time; 'disable *' switches all off")
    store = _store(config_path, db)
    try:
        store.reset(subject)
    finally:
        store.close()
    click.echo(f"{subject}: reset (only feedback from now on counts)")


def _toggle(subject: str, config_path: str | None, db: str | None, disabled: bool) -> None:
    store = _store(config_path, db)
    try:
        store.set_disabled(subject, disabled)
    finally:
        store.close()
    who = "everyone" if subject == ALL else subject
    click.echo(f"{who}: personalisation {'disabled' if disabled else 'enabled'}")


@personal.command("disable")
@click.argument("subject", default=ALL, callback=lambda _c, _p, v: _subject(v))
@config_option
@db_option
def personal_disable(subject: str, config_path: str | None, db: str | None) -> None:
    """Stop applying SUBJECT's offset (default '*': everyone's); it is kept for 'enable'."""
    _toggle(subject, config_path, db, True)


@personal.command("enable")
@click.argument("subject", default=ALL, callback=lambda _c, _p, v: _subject(v))
@config_option
@db_option
def personal_enable(subject: str, config_path: str | None, db: str | None) -> None:
    """Apply SUBJECT's offset again (default '*': personalisation for everyone)."""
    _toggle(subject, config_path, db, False)
