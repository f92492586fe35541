"""``modelmix bench routing`` and ``modelmix router train``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson


@click.group()
def bench() -> None:
    """Offline benchmarks."""


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x * 100:.1f}%" if pct else f"{x:.3f}"


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
@click.option("--seed", default=0, show_default=True)
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
    seed: int,
    json_out: str | None,
    plot_out: str | None,
    decisions_out: str | None,
    all_knobs: bool,
) -> None:
    """Benchmark routers on labelled prompts they did not train on."""
    from rich.console import Console
    from rich.table import Table

    from modelmix.bench.routing import run_benchmark, summary
    from modelmix.routing.learned.data import load_data, load_prices

    console = Console(stderr=False)
    prices = load_prices(prices_path)
    data = load_data(data_path, prices)
    train = load_data(train_path, prices, data.models) if train_path else None
    result = run_benchmark(
        data,
        folds=folds,
        train=train,
        seed=seed,
        keep_decisions=bool(decisions_out),
        progress=lambda msg: console.print(f"[dim]{msg}[/dim]"),
    )
    s = summary(result)
    table = Table(
        title=f"Routing on {s['prompts']} held-out prompts "
        f"({f'k={folds}-fold' if train is None else f'trained on {train_path}'}); "
        f"best single: {s['best_model']} q={s['best_quality']:.3f} cost=${s['best_cost']:.3f}"
    )
    for col in (
        "router",
        "knob",
        "quality",
        "share of best q",
        "cost $",
        "share of best cost",
        "escalation",
        "calls/prompt",
    ):
        table.add_column(col, justify="left" if col in ("router", "knob") else "right")
    shown = {
        "quality_target=0.85",
        "quality_target=0.9",
        "quality_target=0.95",
        "quality_target=0.98",
        "quality_target=0.99",
        "quality_target=1.0",
        "need=2",
        "t=0.60",
        "t=0.80",
        "t=0.90",
        "t=0.96",
        "always",
        "uniform",
        "per-prompt",
    }
    for r in s["runs"]:
        if not all_knobs and r["knob"] not in shown:
            continue
        table.add_row(
            r["router"],
            r["knob"],
            _fmt(r["quality"]),
            _fmt(r["quality_share"], True),
            f"{r['cost']:.3f}",
            _fmt(r["cost_share"], True),
            _fmt(r["escalation_rate"], True),
            f"{r['calls_per_prompt']:.2f}",
        )
    console.print(table)
    curves = Table(title="Cost-quality curves (frontier over knob settings)")
    for col in (
        "router",
        "AIQ",
        "cost share @ best q",
        "saving @ best q",
        "cost share @ 95%",
        "saving @ 95%",
    ):
        curves.add_column(col, justify="left" if col == "router" else "right")
    for name, c in s["curves"].items():
        curves.add_row(
            name,
            _fmt(c["aiq"]),
            _fmt(c["cost_share_at_best"], True),
            _fmt(c["saving_at_best"], True),
            _fmt(c["cost_share_at_95"], True),
            _fmt(c["saving_at_95"], True),
        )
    console.print(curves)
    targets = Table(title="Requested quality_target vs realised share of best quality")
    for col in ("router", "target", "realised", "gap (points)"):
        targets.add_column(col)
    for r in s["runs"]:
        if r["target"] is not None and r["family"] in ("learned", "cascade"):
            gap = (r["quality_share"] - r["target"]) * 100
            targets.add_row(
                r["router"], f"{r['target']:.2f}", _fmt(r["quality_share"], True), f"{gap:+.1f}"
            )
    console.print(targets)
    if "two_model" in s:
        two = Table(title="Two-model metrics")
        for col in ("router", "APGR", "CPT(50%)", "CPT(80%)"):
            two.add_column(col)
        for name, v in s["two_model"].items():
            if isinstance(v, dict):
                two.add_row(name, _fmt(v["apgr"]), _fmt(v["cpt50"], True), _fmt(v["cpt80"], True))
        console.print(two)
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
