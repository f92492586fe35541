"""``modelmix eval``: run datasets through models, show the matrix, plot it, derive profiles."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import orjson
from rich.table import Table

from modelmix.cli.quality_options import (
    config_option,
    console,
    db_option,
    db_path,
    existing_db,
    load,
    money,
    ms,
)
from modelmix.evals.matrix import ALL_TASKS, cells_of, models_and_tasks, profiles
from modelmix.evals.store import Cell, EvalStore
from modelmix.ledger.db import display, is_postgres

__all__ = ["eval_group"]


@click.group("eval")
def eval_group() -> None:
    """Evals: a model x task quality matrix, stored in the ledger."""


def _interval(cell: Cell) -> str:
    return f"{cell.mean:.2f} [{cell.lo:.2f},{cell.hi:.2f}]"


def matrix_table(run_id: str, cells: Sequence[Cell]) -> Table:
    """Quality per model and task: mean [95% interval]."""
    models, tasks = models_and_tasks(cells)
    by_key = {(c.model, c.task): c for c in cells}
    table = Table(title=f"Eval {run_id}: mean quality [95% interval]")
    table.add_column("model")
    for task in [*tasks, ALL_TASKS]:
        n = max((c.n for c in cells if c.task == task), default=0)
        name = "all tasks" if task == ALL_TASKS else task
        table.add_column(f"{name} n={n}", justify="right")
    for model in models:
        row = [model]
        for task in [*tasks, ALL_TASKS]:
            cell = by_key.get((model, task))
            row.append(_interval(cell) if cell else "-")
        table.add_row(*row)
    return table


def summary_table(run_id: str, cells: Sequence[Cell]) -> Table:
    """Per model over every task: quality, errors, cost, latency."""
    table = Table(
        title=f"Eval {run_id}: per model, all tasks",
        caption="intervals: Wilson for 0/1 scores, bootstrap otherwise; a failed call scores 0",
    )
    for col in ("model", "quality", "items", "errors", "cost/item", "total cost", "p50", "p95"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for c in cells:
        if c.task != ALL_TASKS:
            continue
        table.add_row(
            c.model,
            _interval(c),
            str(c.n),
            str(c.errors),
            money(c.cost_mean),
            money(c.cost_total),
            ms(c.latency_p50),
            ms(c.latency_p95),
        )
    return table


def print_matrix(run_id: str, cells: Sequence[Cell]) -> None:
    out = console()
    out.print(matrix_table(run_id, cells))
    out.print(summary_table(run_id, cells))


def _cells_json(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    return [
        {
            "model": c.model,
            "task": c.task,
            "n": c.n,
            "mean": c.mean,
            "lo": c.lo,
            "hi": c.hi,
            "method": c.method,
            "errors": c.errors,
            "cost_mean": None if c.cost_mean is None else format(c.cost_mean, "f"),
            "cost_total": None if c.cost_total is None else format(c.cost_total, "f"),
            "latency_p50_ms": c.latency_p50,
            "latency_p95_ms": c.latency_p95,
        }
        for c in cells
    ]


@eval_group.command("run")
@click.argument("dataset", type=click.Path(exists=True, dir_okay=False))
@config_option
@click.option("--models", "models_csv", default=None, help="Comma-separated models or routes.")
@click.option("--run", "run_id", default=None, help="Run name (default: the dataset's name).")
@click.option("--judge", default=None, help="Judge model for items scored by an LLM judge.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 256))
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--json", "as_json", is_flag=True, help="Print the matrix as JSON.")
def eval_run(
    dataset: str,
    config_path: str | None,
    models_csv: str | None,
    run_id: str | None,
    judge: str | None,
    concurrency: int,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Run DATASET (JSONL) through models via the gateway's engine and score every answer.

    Results are stored per (run, item, model) in the ledger database: running the same run
    again only does what is missing (an interrupted run resumes; more models add rows)."""
    from modelmix.evals.dataset import EvalDataError, load_dataset

    config = load(config_path)
    if os.getcwd() not in sys.path:  # "module:function" scorers next to the dataset
        sys.path.insert(0, os.getcwd())
    try:
        data = load_dataset(dataset)
    except EvalDataError as exc:
        click.echo(f"{dataset}: invalid dataset", err=True)
        for line in exc.errors:
            click.echo(f"  {line}", err=True)
        sys.exit(2)
    names = {m.name for m in config.models} | {r.name for r in config.routes}
    models = [m.strip() for m in models_csv.split(",") if m.strip()] if models_csv else []
    unknown = [m for m in [*models, *([judge] if judge else [])] if m not in names]
    if unknown:
        raise click.ClickException(
            f"unknown model(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}"
        )
    run_id = run_id or Path(dataset).stem
    out = console()
    summary = asyncio.run(_run(config, data, models, run_id, judge, concurrency, no_progress))
    if as_json:
        click.echo(orjson.dumps(_cells_json(summary.cells), option=orjson.OPT_INDENT_2).decode())
        return
    print_matrix(run_id, summary.cells)
    out.print(
        f"run {run_id}: {summary.done} results now, {summary.skipped} already done, "
        f"{summary.errors} errors; judge cost {money(summary.judge_cost)}; "
        f"ledger {display(config.ledger_location)}"
    )


async def _run(
    config: Any,
    data: Any,
    models: list[str],
    run_id: str,
    judge: str | None,
    concurrency: int,
    no_progress: bool,
) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from modelmix.evals.runner import EvalRunner
    from modelmix.gateway import Gateway

    async with Gateway(config, background=False) as gateway:
        if not models:
            models = [n for n, e in gateway.portfolio.items() if e.unavailable is None]
        with EvalStore(config.ledger_location) as store:
            progress = None
            if not no_progress:
                progress = Progress(
                    "[progress.description]{task.description}",
                    BarColumn(),
                    MofNCompleteColumn(),
                    TimeElapsedColumn(),
                    console=console(),
                    transient=True,
                )
            runner = EvalRunner(
                gateway.run, store, concurrency=concurrency, judge=judge, progress=progress
            )
            if progress is None:
                return await runner.run(run_id, data, models)
            with progress:
                return await runner.run(run_id, data, models)


def _load_cells(db: str | None, config_path: str | None, run_id: str) -> list[Cell]:
    with EvalStore(existing_db(db, config_path)) as store:
        info = store.run(run_id)
        if info is None:
            known = ", ".join(r.id for r in store.runs()) or "none yet"
            raise click.ClickException(f"no eval run {run_id!r} (runs: {known})")
        cells = cells_of(run_id, store.results(run_id))  # fresh: shadow runs keep growing
        store.save_cells(run_id, cells)
        return cells


@eval_group.command("matrix")
@click.argument("run_id")
@config_option
@db_option
@click.option("--json", "as_json", is_flag=True)
def eval_matrix(run_id: str, config_path: str | None, db: str | None, as_json: bool) -> None:
    """Show RUN's model x task matrix (quality with 95% intervals, cost, latency)."""
    cells = _load_cells(db, config_path, run_id)
    if as_json:
        click.echo(orjson.dumps(_cells_json(cells), option=orjson.OPT_INDENT_2).decode())
        return
    print_matrix(run_id, cells)


@eval_group.command("heatmap")
@click.argument("run_id")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@config_option
@db_option
def eval_heatmap(run_id: str, out_path: str, config_path: str | None, db: str | None) -> None:
    """Write RUN's matrix as a heatmap PNG (needs matplotlib: pip install 'modelmix[plot]')."""
    from modelmix.evals.heatmap import PlotUnavailable, render

    cells = _load_cells(db, config_path, run_id)
    try:
        path = render(cells, out_path, f"Eval {run_id}: mean quality, 95% interval, n")
    except PlotUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {path}")


@eval_group.command("profiles")
@click.argument("run_id")
@config_option
@db_option
def eval_profiles(run_id: str, config_path: str | None, db: str | None) -> None:
    """The learned router's quality profiles from RUN's matrix (YAML for a route's
    ``learned:``; or set ``learned.profiles_from: eval:RUN`` to read them at start-up)."""
    cells = _load_cells(db, config_path, run_id)
    found = profiles(cells)
    if not found:
        raise click.ClickException(f"run {run_id!r} has no results")
    n = {c.model: c.n for c in cells if c.task == ALL_TASKS}
    click.echo(f"# mean quality per model over eval run {run_id!r} (items: {n})")
    click.echo("profiles: {" + ", ".join(f"{m}: {q}" for m, q in found.items()) + "}")


@eval_group.command("list")
@config_option
@db_option
@click.option("--kind", type=click.Choice(["eval", "probe", "shadow"]), default=None)
def eval_list(config_path: str | None, db: str | None, kind: str | None) -> None:
    """Eval runs (also golden-set probe rounds and shadow comparisons)."""
    path = db_path(db, config_path)
    if not is_postgres(path) and not Path(path).exists():
        click.echo("no runs yet")
        return
    with EvalStore(path) as store:
        runs = store.runs(kind)
    table = Table(title=f"Eval runs in {display(path)}")
    for col in ("run", "kind", "updated", "status", "models", "results", "dataset"):
        table.add_column(col)
    for r in runs:
        when = datetime.fromtimestamp(r.updated_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            r.id, r.kind, when, r.status, ", ".join(r.models), str(r.results), r.dataset or "-"
        )
    console().print(table)
