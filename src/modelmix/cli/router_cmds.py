"""``modelmix bench routing`` and ``modelmix router train``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import orjson

if TYPE_CHECKING:
    from modelmix.routing.learned.data import RoutingData


@click.group()
def bench() -> None:
    """Offline benchmarks."""


@bench.command("routing")
@click.option("--data", "data_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--prices", "prices_path", required=True, type=click.Path(exists=True, dir_okay=False)
)
@click.option(
    "--train",
    "train_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Train on this file and evaluate on all of --data.",
)
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 50))
@click.option(
    "--split",
    type=click.Choice(["kfold", "task"]),
    default="kfold",
    show_default=True,
    help="kfold: random folds; task: whole categories held out (leave-one-task-out).",
)
@click.option(
    "--max-prompts",
    type=click.IntRange(20, None),
    default=None,
    help="Evaluate a random subsample of this many prompts (stated in the output).",
)
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--models",
    "models_csv",
    default=None,
    help="Comma-separated models of the file to keep: a smaller portfolio.",
)
@click.option(
    "--random-models",
    type=click.IntRange(2, None),
    default=None,
    help="Keep this many of the file's models, drawn at random (--portfolio-seed).",
)
@click.option("--portfolio-seed", default=0, show_default=True)
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Write results as JSON.")
@click.option("--plot", "plot_out", type=click.Path(dir_okay=False), help="Cost-quality PNG.")
@click.option(
    "--decisions",
    "decisions_out",
    type=click.Path(dir_okay=False),
    help="Per-prompt decisions (JSONL).",
)
@click.option("--all-knobs", is_flag=True, help="Show every knob setting, not a selection.")
def bench_routing(
    data_path: str,
    prices_path: str,
    train_path: str | None,
    folds: int,
    split: str,
    max_prompts: int | None,
    seed: int,
    models_csv: str | None,
    random_models: int | None,
    portfolio_seed: int,
    json_out: str | None,
    plot_out: str | None,
    decisions_out: str | None,
    all_knobs: bool,
) -> None:
    """Benchmark routers on labelled prompts they did not train on."""
    from rich.console import Console

    from modelmix.bench.report import print_report
    from modelmix.bench.routing import run_benchmark, subsample, summary
    from modelmix.routing.learned.data import load_data, load_prices

    console = Console(stderr=False)
    prices = load_prices(prices_path)
    data = load_data(data_path, prices)
    in_file = len(data.models)
    try:
        data = _portfolio(data, models_csv, random_models, portfolio_seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--models / --random-models") from exc
    if len(data.models) < in_file:
        note = _portfolio_note(models_csv, random_models, portfolio_seed)
        console.print(
            f"portfolio: {len(data.models)} of the file's {in_file} models{note}: "
            + ", ".join(data.models),
            soft_wrap=True,
        )
    total = len(data)
    if max_prompts is not None:
        data = subsample(data, max_prompts, seed)
    train = load_data(train_path, prices, data.models) if train_path else None
    result = run_benchmark(
        data,
        folds=folds,
        train=train,
        seed=seed,
        keep_decisions=bool(decisions_out),
        progress=lambda msg: console.print(f"[dim]{msg}[/dim]"),
        split=split,
    )
    s = summary(result)
    s["subsample"] = {"prompts": len(data), "of": total, "seed": seed}
    how = {
        "kfold": f"out of fold, k={result.folds}",
        "task": f"leave-task-out, {result.folds} folds of whole categories",
        "given": f"trained on {train_path}",
    }[result.split]
    sub = f"random subsample of {len(data)} of {total} prompts (seed {seed}); " * (
        len(data) < total
    )
    s["portfolio"] = list(data.models)
    title = (
        f"Routing on {s['prompts']} held-out prompts ({how}); {sub}"
        f"{len(data.models)} models; "
        f"best single: {s['best_model']} q={s['best_quality']:.3f} cost=${s['best_cost']:.3f}"
    )
    print_report(console, s, title, all_knobs)
    _write_outputs(s, result, json_out, plot_out, decisions_out)


def _portfolio(
    data: RoutingData, models_csv: str | None, size: int | None, seed: int
) -> RoutingData:
    """The file's data restricted to ``--models`` or a random draw of ``--random-models``."""
    from modelmix.routing.learned.data import draw_portfolio

    if models_csv and size is not None:
        raise ValueError("give --models or --random-models, not both")
    if models_csv:
        return data.keep_models([m.strip() for m in models_csv.split(",") if m.strip()])
    if size is not None:
        return data.keep_models(draw_portfolio(data.models, size, seed))
    return data


def _portfolio_note(models_csv: str | None, size: int | None, seed: int) -> str:
    if models_csv:
        return " (--models)"
    return f" drawn at random (portfolio seed {seed})" if size is not None else ""


def _write_outputs(
    s: dict[str, Any],
    result: Any,
    json_out: str | None,
    plot_out: str | None,
    decisions_out: str | None,
) -> None:
    if json_out:
        Path(json_out).write_bytes(orjson.dumps(s, option=orjson.OPT_INDENT_2))
    if plot_out:
        from modelmix.bench.plot import plot

        plot(s, plot_out)
    if decisions_out:
        with open(decisions_out, "wb") as fh:
            for r in result.runs:
                for d in r.decisions:
                    fh.write(orjson.dumps(d) + b"\n")


def ledger_training_options(f: Any) -> Any:
    """The options of ``router train --from-ledger`` (see cli/quality_cmds.py)."""
    options = [
        click.option("--from-ledger", is_flag=True, help="Train on the ledger's labels."),
        click.option("--config", "config_path", type=click.Path(dir_okay=False)),
        click.option("--db", type=click.Path(dir_okay=False)),
        click.option("--route", "route_name", default=None, help="Route to retrain."),
        click.option("--models", "models_csv", default=None, help="Default: the route's."),
        click.option("--since", default=None, help="Only labels since (7d, ISO date)."),
        click.option("--policy-out", default=None, help="Candidate policy file to write."),
        click.option("--evals/--no-evals", "use_evals", default=True, help="Use eval runs."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


@click.group()
def router() -> None:
    """Learned routers."""


@router.command("train")
@click.option("--data", "data_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--prices", "prices_path", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 50))
@click.option("--voters", default=None, help="Comma-separated cascade voters (default: chosen).")
@click.option(
    "--stages",
    default=None,
    help="Staged cascade, stages separated by ';', models by ',' (default: chosen).",
)
@ledger_training_options
def router_train(
    data_path: str | None,
    prices_path: str | None,
    out_path: str,
    folds: int,
    voters: str | None,
    stages: str | None,
    **ledger: Any,
) -> None:
    """Train a router artifact (weights only) from a labelled file (--data, --prices), or from
    the ledger's labelled traffic and evals (--from-ledger: then replayed offline against the
    live policy, and written as a candidate policy to canary)."""
    if ledger.pop("from_ledger"):
        from modelmix.cli.quality_cmds import train_from_ledger

        train_from_ledger(out_path=out_path, folds=folds, **ledger)
        return
    if data_path is None or prices_path is None:
        raise click.UsageError("give --data and --prices, or --from-ledger")
    from modelmix.routing.learned.calibrate import train_artifact
    from modelmix.routing.learned.data import load_data, load_prices

    data = load_data(data_path, load_prices(prices_path))
    try:
        artifact = train_artifact(
            data,
            folds=folds,
            voters=voters.split(",") if voters else None,
            stages=[s.split(",") for s in stages.split(";")] if stages else None,
        )
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    artifact.save(out_path)
    info: dict[str, Any] = {
        "models": len(artifact.models),
        "prompts": len(data),
        "best_model": artifact.best_model,
        "cascade_voters": artifact.gate.voters if artifact.gate else None,
        "cascade_stages": artifact.staged.stages if artifact.staged else None,
    }
    click.echo(f"wrote {out_path}: " + orjson.dumps(info).decode())
    from modelmix.routing.learned.safety import report_lines

    for line in report_lines(artifact):
        click.echo(line)
