"""Options and helpers the quality-loop commands share: which config, which ledger file."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from modelmix.config import Config, ConfigError, load_config
from modelmix.ledger.db import Location, as_location, is_postgres

F = TypeVar("F", bound=Callable[..., Any])


def config_option(f: F) -> F:
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="YAML config (default: the built-in zero-config portfolio).",
    )(f)


def db_option(f: F) -> F:
    return click.option(
        "--db",
        "db",
        type=click.Path(dir_okay=False),
        help="Ledger database (default: the config's; $MODELMIX_HOME/ledger.db).",
    )(f)


def load_or_default(config_path: str | None) -> Config:
    """The config from ``config_path``, or the built-in default (demo + keys in the environment)."""
    if config_path:
        return load_config(config_path)
    from modelmix.defaults import default_config

    return default_config(os.environ)


def load(config_path: str | None) -> Config:
    """The config, or the built-in default; a bad file exits with its errors."""
    try:
        return load_or_default(config_path)
    except ConfigError as exc:
        click.echo(f"{exc.source}: invalid configuration", err=True)
        for line in exc.errors:
            click.echo(f"  {line}", err=True)
        sys.exit(2)


def db_path(db: str | None, config_path: str | None) -> Location:
    if db:
        return as_location(db)
    return load(config_path).ledger_location


def existing_db(db: str | None, config_path: str | None) -> Location:
    path = db_path(db, config_path)
    if not is_postgres(path) and not Path(path).exists():
        raise click.ClickException(f"no ledger at {path} (use --db or --config to pick one)")
    return path


def console() -> Console:
    return Console(soft_wrap=False, width=None if sys.stdout.isatty() else 160)


def money(value: Decimal | float | None) -> str:
    if value is None:
        return "-"
    x = float(value)
    if x == 0:
        return "$0"
    if abs(x) < 0.01:  # three significant digits, never an exponent
        return f"${x:.{2 - math.floor(math.log10(abs(x)))}f}"
    return f"${x:,.4f}"


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"
