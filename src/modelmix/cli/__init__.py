"""The ``modelmix`` command."""

from __future__ import annotations

import logging
import os
import sys

import click

from modelmix import __version__
from modelmix.config import Config, ConfigError, load_config


def load_or_default(config_path: str | None) -> Config:
    """The config from ``config_path``, or the built-in default (demo + keys in the environment)."""
    if config_path:
        return load_config(config_path)
    from modelmix.defaults import default_config

    return default_config(os.environ)


@click.group()
@click.version_option(__version__, prog_name="modelmix")
def main() -> None:
    """modelmix: send every prompt to the cheapest model that will answer it well."""


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 4000).")
@click.option("--log-level", default="info", show_default=True)
def serve(config_path: str | None, host: str | None, port: int | None, log_level: str) -> None:
    """Start the gateway (no config: the simulated demo portfolio plus keys from the env)."""
    import uvicorn

    from modelmix.gateway import Gateway
    from modelmix.server.app import create_app

    try:
        config = load_or_default(config_path)
    except ConfigError as exc:
        _print_config_errors(exc)
        sys.exit(2)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    host = host or config.server.host
    port = port if port is not None else config.server.port
    app = create_app(Gateway(config))
    click.echo(
        f"modelmix {__version__}: http://{host}:{port}/v1  (ledger: {config.ledger_path}, "
        f"config hash {config.hash()})",
        err=True,
    )
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)


@main.group("config")
def config_group() -> None:
    """Inspect configuration files."""


def _print_config_errors(exc: ConfigError) -> None:
    click.echo(f"{exc.source}: invalid configuration", err=True)
    for line in exc.errors:
        click.echo(f"  {line}", err=True)


@config_group.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
def config_check(path: str) -> None:
    """Validate a config file; every error names its dotted path."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        _print_config_errors(exc)
        sys.exit(1)
    click.echo(
        f"{path}: OK ({len(config.models)} models, {len(config.routes)} routes, "
        f"hash {config.hash()})"
    )
    missing = sorted(
        {
            m.api_key_env
            for m in config.models
            if m.api_key_env and not os.environ.get(m.api_key_env)
        }
    )
    for var in missing:
        click.echo(f"  warning: {var} is not set; models using it will be unavailable")


def _register_commands() -> None:
    from modelmix.cli.ledger_cmds import keys, logs, report
    from modelmix.cli.router_cmds import bench, router

    for command in (logs, report, keys, bench, router):
        main.add_command(command)


_register_commands()
