"""``modelmix ledger migrate``: move a ledger between SQLite and PostgreSQL (ledger/migrate.py)."""

from __future__ import annotations

import click

from modelmix.ledger.db import display
from modelmix.ledger.migrate import MigrateError, migrate_ledger, parse_location

__all__ = ["ledger_group"]


@click.group("ledger")
def ledger_group() -> None:
    """Ledger maintenance (``logs`` and ``report`` read it)."""


@ledger_group.command("migrate")
@click.option(
    "--from",
    "source",
    required=True,
    help="The ledger to copy: sqlite:PATH (or a path), or a postgresql:// URL.",
)
@click.option(
    "--to",
    "target",
    required=True,
    help="An empty ledger to fill: a postgresql:// URL (or sqlite:PATH).",
)
def migrate(source: str, target: str) -> None:
    """Copy every table of a ledger into an empty one and verify the row counts.

    Stop the gateways writing to the source first (rows they write during the copy are not
    moved). A target that already holds rows is refused; a failure leaves it empty.
    """
    src, dst = parse_location(source), parse_location(target)

    def progress(table: str, rows: int) -> None:
        click.echo(f"  {table:<16} {rows:>10,} rows")

    click.echo(f"copying {display(src)} -> {display(dst)}")
    try:
        counts = migrate_ledger(src, dst, progress)
    except MigrateError as exc:
        raise click.ClickException(str(exc)) from None
    total = sum(counts.values())
    click.echo(f"done: {total:,} rows in {len(counts)} tables, row counts verified")
