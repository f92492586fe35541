"""``modelmix replay``, ``modelmix alarms`` and the ``--from-ledger`` mode of
``modelmix router train``."""

from __future__ import annotations

import dataclasses
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
from rich.table import Table

from modelmix.cli.quality_options import config_option, console, db_option, existing_db, load, money
from modelmix.config import Config, ConfigError, RouteConfig
from modelmix.evals.matrix import profiles as matrix_profiles
from modelmix.evals.store import EvalStore
from modelmix.ledger.db import Location
from modelmix.portfolio import ModelEntry, build_portfolio
from modelmix.quality.policy import (
    document_yaml,
    load_policy_file,
    routes_document,
    validate_routes,
    with_eval_profiles,
)
from modelmix.quality.policy_store import PolicyError, PolicyStore
from modelmix.quality.replay import Report, compare, eval_means
from modelmix.quality.store import QualityStore
from modelmix.quality.traffic import load_traffic

__all__ = ["alarms", "replay", "train_from_ledger"]


def _since(value: str | None) -> float:
    if value is None:
        return 0.0
    from modelmix.cli.ledger_cmds import parse_since

    return parse_since(value)


def offline_portfolio(config: Config) -> dict[str, ModelEntry]:
    """The portfolio for planning only: prices and capabilities, nothing is called."""
    return build_portfolio(config, {}, lambda kind: "http://offline.invalid")


def live_routes(config: Config, path: Location, against: str) -> tuple[str, list[RouteConfig]]:
    """(version id, routes) of ``against`` (``live`` or a version id) in the ledger; the
    config file's routes when no version was ever recorded."""
    with PolicyStore(path) as store:
        if not store.versions():
            return "config file", list(config.routes)
        try:
            version = store.version(against)
        except PolicyError as exc:
            raise click.ClickException(str(exc)) from None
    return version.id, validate_routes(config, version.document["routes"], version.id)


def _priors(evals: EvalStore, prior: str | None) -> dict[str, float]:
    """Priors for models whose quality on a request is unknown: an eval run's profiles with
    ``--prior eval:RUN``; by default each model's mean score over every eval run (the
    replay prefers the logged traffic's own labels for models it has them for)."""
    if prior is None:
        return {}
    run = prior.removeprefix("eval:")
    found = matrix_profiles(evals.cells(run))
    if not found:
        raise click.ClickException(f"eval run {run!r} has no results for priors")
    return found


def run_replay(
    config: Config,
    path: Location,
    candidate: Sequence[RouteConfig],
    against: str = "live",
    since: float = 0.0,
    route: str | None = None,
    prior: str | None = None,
) -> tuple[str, Report]:
    with QualityStore(path) as store, EvalStore(path) as evals:
        traffic = load_traffic(store, since, route)
        priors = _priors(evals, prior)
        fallback = eval_means(evals)
        live_id, live = live_routes(config, path, against)
        try:
            live = with_eval_profiles(live, evals)
            candidate = with_eval_profiles(candidate, evals)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    report = compare(offline_portfolio(config), live, candidate, traffic, priors, fallback)
    return live_id, report


def print_report(live_id: str, candidate_name: str, report: Report) -> None:
    out = console()
    table = Table(
        title=f"Offline replay of {report.compared} logged requests "
        f"(of {report.requests} captured); no upstream was called",
        caption="95% intervals: paired bootstrap over requests. 'observed': share of answers "
        "whose quality was known (feedback, judge, shadow); the rest use the model's prior",
    )
    for col in ("policy", "quality", "observed", "cost / request", "models chosen"):
        table.add_column(col, justify="left" if col in ("policy", "models chosen") else "right")
    for name, p in ((f"live ({live_id})", report.live), (candidate_name, report.candidate)):
        table.add_row(
            name,
            f"{p.quality.mean:.3f} [{p.quality.lo:.3f}, {p.quality.hi:.3f}]",
            f"{p.observed_quality:.0%}",
            f"{money(p.cost.mean)} [{money(p.cost.lo)}, {money(p.cost.hi)}]",
            ", ".join(f"{m} {n}" for m, n in sorted(p.models.items())),
        )
    q, c = report.quality_diff, report.cost_diff
    table.add_row(
        "candidate - live",
        f"{q.mean:+.3f} [{q.lo:+.3f}, {q.hi:+.3f}]",
        "",
        f"{c.mean:+.7f} [{c.lo:+.7f}, {c.hi:+.7f}]",
        f"same model on {report.agreement:.0%}",
    )
    out.print(table)
    if report.unreplayable:
        out.print(
            "not replayed: "
            + ", ".join(f"{k} ({v})" for k, v in sorted(report.unreplayable.items()))
        )
    out.print(report.verdict())


# -- replay --------------------------------------------------------------------------------


@click.command()
@click.option(
    "--policy",
    "policy_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Candidate policy: YAML with routes:.",
)
@click.option("--against", default="live", show_default=True, help="Version to compare with.")
@click.option("--since", default=None, help="Only traffic since (24h, 7d or an ISO date).")
@click.option("--route", default=None, help="Only this route's traffic.")
@click.option("--prior", default=None, help="Priors for unknown outcomes: eval:RUN.")
@click.option("--json", "as_json", is_flag=True)
@config_option
@db_option
def replay(
    policy_path: str,
    against: str,
    since: str | None,
    route: str | None,
    prior: str | None,
    as_json: bool,
    config_path: str | None,
    db: str | None,
) -> None:
    """Replay logged traffic (captured requests with known outcomes) under a candidate policy:
    predicted quality and cost with 95% intervals, against the live policy. Never calls an
    upstream."""
    config = load(config_path)
    path = existing_db(db, config_path)
    try:
        candidate = load_policy_file(config, policy_path)
    except ConfigError as exc:
        click.echo(f"{exc.source}: invalid policy", err=True)
        for line in exc.errors:
            click.echo(f"  {line}", err=True)
        sys.exit(2)
    live_id, report = run_replay(config, path, candidate, against, _since(since), route, prior)
    if report.compared == 0:
        raise click.ClickException(
            f"no logged request could be replayed ({report.requests} captured; turn on "
            "quality.capture and label traffic with feedback, the judge or shadows)"
        )
    if as_json:
        click.echo(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode())
        return
    print_report(live_id, f"candidate ({Path(policy_path).name})", report)


# -- router train --from-ledger ----------------------------------------------------------------


def train_from_ledger(
    *,
    config_path: str | None,
    db: str | None,
    out_path: str,
    route_name: str | None,
    models_csv: str | None,
    since: str | None,
    folds: int,
    policy_out: str | None,
    use_evals: bool,
) -> None:
    from modelmix.quality.train import ledger_rows
    from modelmix.routing.learned.calibrate import train_artifact
    from modelmix.routing.learned.data import load_data
    from modelmix.routing.learned.strategy import portfolio_prices

    config = load(config_path)
    path = existing_db(db, config_path)
    live_id, live = live_routes(config, path, "live")
    learned = [r for r in live if r.strategy == "learned"]
    if route_name is not None:
        route = next((r for r in live if r.name == route_name), None)
        if route is None:
            raise click.ClickException(f"no route {route_name!r} in policy {live_id}")
    elif learned:
        route = learned[0]
    else:
        raise click.ClickException("the live policy has no learned route: name one with --route")
    models = [m.strip() for m in models_csv.split(",")] if models_csv else list(route.models)
    if len(models) < 2:
        raise click.ClickException("a router needs at least two models (--models a,b)")
    portfolio = offline_portfolio(config)
    prices = portfolio_prices(portfolio, models)
    missing = [m for m in models if m not in prices]
    if missing:
        raise click.ClickException(f"no price for {', '.join(missing)}")
    with QualityStore(path) as store, EvalStore(path) as evals:
        found = ledger_rows(store, evals, models, since=_since(since), use_evals=use_evals)
    out = console()
    click.echo(
        f"labelled prompts: {len(found.rows)} with every model's outcome, of "
        f"{found.prompts_seen} seen (per model: "
        + ", ".join(f"{m} {n}" for m, n in found.per_model.items())
        + "; from "
        + ", ".join(f"{k} {v}" for k, v in sorted(found.sources.items()))
        + ")"
    )
    if len(found.rows) < 2 * folds:
        raise click.ClickException(
            f"need at least {2 * folds} prompts labelled for every model, have "
            f"{len(found.rows)}: run evals (modelmix eval run) or shadow traffic to label more"
        )
    with tempfile.TemporaryDirectory() as tmp:
        rows_path = Path(tmp) / "rows.jsonl"
        rows_path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in found.rows))
        data = load_data(rows_path, prices, models)
    try:
        artifact = train_artifact(data, folds=folds)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    artifact.save(out_path)
    artifact_path = str(Path(out_path).resolve())
    click.echo(
        f"wrote {out_path}: {len(models)} models, {len(data)} prompts, best {artifact.best_model}, "
        "held-out calibration: "
        + ", ".join(f"{m} {q:.2f}" for m, q in artifact.meta.get("model_quality", {}).items())
    )
    knobs = dict(route.learned.model_dump(exclude_defaults=True)) if route.learned else {}
    knobs.pop("profiles", None)
    knobs.pop("profiles_from", None)
    knobs["artifact"] = artifact_path
    new_route = route.model_copy(
        update={"strategy": "learned", "models": models, "learned": None, "rules": []}
    )
    data_routes: list[dict[str, Any]] = []
    for r in live:
        dumped = r.model_dump(mode="json", exclude_defaults=True)
        if r.name == route.name:
            dumped = {**new_route.model_dump(mode="json", exclude_defaults=True), "learned": knobs}
            dumped["strategy"] = "learned"
        data_routes.append(dumped)
    candidate = validate_routes(config, data_routes, "retrained policy")
    policy_path = Path(policy_out or Path(out_path).with_suffix(".policy.yaml"))
    policy_path.write_text(
        f"# route {route.name!r} retrained from the ledger (policy {live_id} otherwise)\n"
        + document_yaml(routes_document(candidate))
    )
    click.echo(f"wrote {policy_path}: the live policy with route {route.name!r} on the new router")
    live_id, report = run_replay(config, path, candidate)
    if report.compared:
        print_report(live_id, f"retrained ({policy_path.name})", report)
    else:
        out.print("no captured traffic to replay (turn on quality.capture); replay skipped")
    out.print(
        f"deploy carefully: modelmix policy canary {policy_path} --share 0.1"
        + (f" --config {config_path}" if config_path else "")
    )


# -- alarms --------------------------------------------------------------------------------


@click.group()
def alarms() -> None:
    """Regression alarms (raised by a gateway with quality.alarms.enabled)."""


@alarms.command("list")
@click.option("--active", is_flag=True, help="Only alarms that still hold.")
@click.option("--json", "as_json", is_flag=True)
@config_option
@db_option
def alarms_list(active: bool, as_json: bool, config_path: str | None, db: str | None) -> None:
    """Alarms raised, newest first."""
    with QualityStore(existing_db(db, config_path)) as store:
        found = store.alarms(active_only=active)
    if as_json:
        click.echo(
            orjson.dumps(
                [dataclasses.asdict(a) for a in found], option=orjson.OPT_INDENT_2
            ).decode()
        )
        return
    table = Table(title="Regression alarms")
    for col in ("id", "raised", "kind", "subject", "source", "detail", "cleared"):
        table.add_column(col)
    for a in found:
        table.add_row(
            str(a.id),
            _when(a.at),
            a.kind,
            a.subject,
            a.source,
            orjson.dumps(a.detail).decode()[:90],
            _when(a.cleared_at) if a.cleared_at else "active",
        )
    console().print(table)


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


@alarms.command("check")
@config_option
@db_option
def alarms_check(config_path: str | None, db: str | None) -> None:
    """Run the alarm checks once over the ledger now (what the gateway does on schedule);
    raises and clears alarms like the gateway would."""
    import asyncio
    import time

    from modelmix.quality.alarms import Monitor

    config = load(config_path)
    path = existing_db(db, config_path)

    async def check() -> list[Any]:
        with QualityStore(path) as store, EvalStore(path) as evals:
            monitor = Monitor(store, evals, config.quality.alarms)
            try:
                return await monitor.check(time.time())
            finally:
                await monitor.close()

    raised = asyncio.run(check())
    click.echo(
        f"{len(raised)} new alarm(s)"
        + "".join(f"\n  {f.kind} {f.subject} ({f.source})" for f in raised)
    )
