"""The model x task matrix: per cell, mean quality with a 95% interval (Wilson for 0/1
scores, bootstrap otherwise), errors, cost per item and in total, latency p50/p95.

A failed call scores 0 (it did not answer) and is also counted in ``errors``. Task ``*`` is
every task of the run together. ``profiles`` turns the matrix into the learned router's
per-model quality profiles.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from decimal import Decimal

from modelmix.evals.store import Cell, ResultRow
from modelmix.stats import mean_interval, percentile

ALL_TASKS = "*"
#: The learned router's profiles must lie strictly inside (0, 1).
PROFILE_BOUNDS = (0.02, 0.98)


def cells_of(run_id: str, results: Iterable[ResultRow]) -> list[Cell]:
    groups: dict[tuple[str, str], list[ResultRow]] = defaultdict(list)
    for r in results:
        groups[(r.model, r.task)].append(r)
        groups[(r.model, ALL_TASKS)].append(r)
    return [_cell(run_id, model, task, rows) for (model, task), rows in sorted(groups.items())]


def _cell(run_id: str, model: str, task: str, rows: Sequence[ResultRow]) -> Cell:
    interval = mean_interval([r.score for r in rows])
    costs = [r.cost_usd for r in rows if r.cost_usd is not None]
    total = sum(costs, Decimal(0)) if costs else None
    latencies = [r.latency_ms for r in rows if r.latency_ms is not None and r.error is None]
    return Cell(
        run_id=run_id,
        model=model,
        task=task,
        n=interval.n,
        mean=interval.mean,
        lo=interval.lo,
        hi=interval.hi,
        method=interval.method,
        errors=sum(1 for r in rows if r.error is not None),
        cost_mean=None if total is None else total / len(costs),
        cost_total=total,
        latency_p50=percentile(latencies, 50),
        latency_p95=percentile(latencies, 95),
    )


def models_and_tasks(cells: Sequence[Cell]) -> tuple[list[str], list[str]]:
    models = list(dict.fromkeys(c.model for c in cells))
    tasks = sorted({c.task for c in cells if c.task != ALL_TASKS})
    return models, tasks


def profiles(cells: Sequence[Cell]) -> dict[str, float]:
    """Each model's quality over the whole run, clipped into the router's (0, 1) range."""
    lo, hi = PROFILE_BOUNDS
    return {
        c.model: round(min(max(c.mean, lo), hi), 4)
        for c in cells
        if c.task == ALL_TASKS and c.n > 0
    }
