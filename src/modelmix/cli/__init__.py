"""The ``modelmix`` command."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from modelmix import __version__
from modelmix.cli.quality_options import load_or_default
from modelmix.config import Config, ConfigError, load_config


@click.group()
@click.version_option(__version__, prog_name="modelmix")
def main() -> None:
    """modelmix: send every prompt to the cheapest model that will answer it well."""


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config file.")
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 4000).")
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes sharing the port (SO_REUSEPORT), each with its own gateway; "
    "they share the SQLite ledger and the budget and rate-limit counters beside it.",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="One line per request: method, path, status, model, latency, request id.",
)
def serve(
    config_path: str | None,
    host: str | None,
    port: int | None,
    log_level: str,
    workers: int,
    access_log: bool,
) -> None:
    """Start the gateway (no config: the simulated demo portfolio plus keys from the env)."""
    try:
        config = load_or_default(config_path)
        _preflight(config, config_path)
    except ConfigError as exc:
        _print_config_errors(exc)
        sys.exit(2)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    host = host or config.server.host
    port = port if port is not None else config.server.port
    from modelmix.ledger.db import display

    click.echo(
        f"modelmix {__version__}: http://{host}:{port}/v1  "
        f"(ledger: {display(config.ledger_location)}, "
        f"config hash {config.hash()}, {workers} worker{'s' if workers > 1 else ''})",
        err=True,
    )
    _introduce(config, host, port, access_log)  # issue 12: models, routes, dashboard, ledger
    if workers > 1 and config.budgets.store == "memory":
        click.echo(
            f"warning: budgets.store is 'memory': each of the {workers} workers enforces the "
            f"budgets and rate limits on its own (up to {workers}x each limit); use the "
            "default 'shared' store to enforce them once across workers",
            err=True,
        )
    if workers == 1:
        _serve_one(config, host, port, log_level, access_log=access_log)
    else:
        _serve_many(config, host, port, log_level, workers, access_log)


def _introduce(config: Config, host: str, port: int, access_log: bool) -> None:
    """Print what a newcomer needs (``cli/banner.py``) and remember this ledger as the one
    ``logs``/``report`` read (``paths.mark_active_ledger``)."""
    from modelmix.cli.banner import banner
    from modelmix.ledger.keys import KeyStore
    from modelmix.paths import mark_active_ledger

    store = KeyStore(config.ledger_path)
    virtual = store.any_keys()
    store.close()
    for line in banner(config, host, port, virtual_keys=virtual, access_log=access_log):
        click.echo(line, err=True)
    mark_active_ledger(config.ledger_path)


def _serve_one(
    config: Config,
    host: str,
    port: int,
    log_level: str,
    *,
    reuse: bool = False,
    access_log: bool = True,
) -> None:
    """One gateway in this process. ``reuse``: bind with SO_REUSEPORT, beside other workers."""
    import socket

    from modelmix.gateway import Gateway
    from modelmix.server.app import create_app
    from modelmix.server.http_limits import uvicorn_config
    from modelmix.server.shutdown import deadline_server

    # The ledger writer is a second thread: hand the GIL back to the event loop after 1 ms of
    # its work rather than the default 5 ms, which would show as latency spikes.
    sys.setswitchinterval(0.001)
    gateway_app = create_app(Gateway(config))
    app: Any = gateway_app
    if access_log and log_level.lower() in ("trace", "debug", "info"):
        from modelmix.server.access_log import AccessLog

        app = AccessLog(gateway_app)
    cfg = uvicorn_config(  # header-size limit, shutdown deadline (issue 14)
        app,
        config,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    server = deadline_server(gateway_app, cfg, config.server.shutdown_deadline)  # issue 14
    if not reuse:
        server.run()
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    server.run(sockets=[sock])  # sets up uvloop like uvicorn.run


def _serve_many(
    config: Config, host: str, port: int, log_level: str, workers: int, access_log: bool
) -> None:
    """``workers`` processes, each binding the port with SO_REUSEPORT (the kernel spreads
    connections across them); SIGINT/SIGTERM go to every child, which stops gracefully."""
    import multiprocessing
    import signal

    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited loop/threads
    procs = [
        ctx.Process(
            target=_serve_one,
            args=(config, host, port, log_level),
            kwargs={"reuse": True, "access_log": access_log},
            name=f"modelmix-worker-{i}",
        )
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()

    def forward(signum: int, frame: object) -> None:
        for proc in procs:
            if proc.is_alive() and proc.pid is not None:
                os.kill(proc.pid, signal.SIGTERM)  # graceful; a 2nd SIGINT would force

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    for proc in procs:
        proc.join()
    failed = [p.exitcode for p in procs if p.exitcode not in (0, None)]
    if failed:
        sys.exit(1)


@main.group("config")
def config_group() -> None:
    """Inspect configuration files."""


def _preflight(config: Config, source: str | None) -> None:
    """Files the config names must be usable (the quality loop's golden set)."""
    from modelmix.quality.config import preflight

    problems = preflight(config)
    if problems:
        raise ConfigError(source or "<built-in default>", problems)


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
        _preflight(config, path)
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
    from modelmix.routing.learned.safety import route_notes

    for line in route_notes(config):
        click.echo(f"  {line}")


def _register_commands() -> None:
    from modelmix.cli.keys_cmds import keys
    from modelmix.cli.ledger_cmds import logs, report
    from modelmix.cli.migrate_cmds import ledger_group
    from modelmix.cli.router_cmds import bench, router

    for command in (logs, report, keys, bench, router, ledger_group):
        main.add_command(command)
    _register_quality_commands()


def _register_quality_commands() -> None:
    from modelmix.cli.eval_cmds import eval_group
    from modelmix.cli.personal_cmds import personal
    from modelmix.cli.policy_cmds import policy
    from modelmix.cli.quality_cmds import alarms, replay

    for command in (eval_group, policy, replay, alarms):
        main.add_command(command)
    policy.add_command(personal)


_register_commands()
