"""The matrix as a heatmap PNG: models x tasks, coloured by mean quality, each cell showing the
mean and its 95% interval; a side column gives each model's cost per item and latency.

Needs matplotlib, an optional extra: ``pip install 'modelmix[plot]'``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from modelmix.evals.matrix import ALL_TASKS, models_and_tasks
from modelmix.evals.store import Cell


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "the heatmap needs matplotlib: pip install 'modelmix[plot]'"
        ) from None
    return plt


def _money(value: object) -> str:
    if value is None:
        return "-"
    x = float(value)  # type: ignore[arg-type]
    if x == 0:
        return "$0"
    if x < 0.01:  # two significant digits, never an exponent
        return f"${x:.{1 - math.floor(math.log10(x))}f}"
    return f"${x:.3f}"


def render(cells: Sequence[Cell], out: str | Path, title: str) -> Path:
    """Write the heatmap of ``cells`` to ``out`` (PNG); returns the path."""
    plt = _pyplot()
    models, tasks = models_and_tasks(cells)
    if not models:
        raise ValueError("no results to plot")
    columns = [*tasks, ALL_TASKS]
    by_key = {(c.model, c.task): c for c in cells}
    width = 2.0 + 1.45 * len(columns) + 2.6
    height = 1.6 + 0.75 * len(models)
    fig, (ax, side) = plt.subplots(
        1,
        2,
        figsize=(width, height),
        gridspec_kw={"width_ratios": [1.45 * len(columns), 2.6]},
        dpi=130,
    )
    grid = [
        [by_key[(m, t)].mean if (m, t) in by_key else float("nan") for t in columns] for m in models
    ]
    image = ax.imshow(grid, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(["all tasks" if t == ALL_TASKS else t for t in columns], fontsize=10)
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(models, fontsize=10)
    ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
    ax.axvline(len(tasks) - 0.5, color="white", linewidth=4)
    for i, m in enumerate(models):
        for j, t in enumerate(columns):
            cell = by_key.get((m, t))
            if cell is None:
                ax.text(j, i, "-", ha="center", va="center", fontsize=10)
                continue
            dark = cell.mean < 0.25 or cell.mean > 0.8
            colour = "white" if dark else "black"
            ax.text(
                j,
                i - 0.2,
                f"{cell.mean:.2f}",
                ha="center",
                va="center",
                fontsize=12,
                fontweight="bold",
                color=colour,
            )
            if cell.errors:
                ax.text(
                    j,
                    i + 0.38,
                    f"{cell.errors} failed calls",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color=colour,
                    style="italic",
                )
            ax.text(
                j,
                i + 0.14,
                f"[{cell.lo:.2f}, {cell.hi:.2f}]  n={cell.n}",
                ha="center",
                va="center",
                fontsize=7.5,
                color=colour,
            )
    cbar = fig.colorbar(image, ax=ax, fraction=0.035, pad=0.02)
    cbar.set_label("mean quality", fontsize=9)
    side.set_xlim(0, 1)
    side.set_ylim(len(models) - 0.5, -0.5)
    side.axis("off")
    side.text(0.0, -0.75, "cost / item", fontsize=9, fontweight="bold", va="bottom")
    side.text(0.5, -0.75, "latency p50 / p95", fontsize=9, fontweight="bold", va="bottom")
    for i, m in enumerate(models):
        cell = by_key.get((m, ALL_TASKS))
        if cell is None:
            continue
        p50 = "-" if cell.latency_p50 is None else f"{cell.latency_p50:.0f}"
        p95 = "-" if cell.latency_p95 is None else f"{cell.latency_p95:.0f}"
        side.text(0.0, i, _money(cell.cost_mean), fontsize=10, va="center")
        side.text(0.5, i, f"{p50} / {p95} ms", fontsize=10, va="center")
        if cell.errors:
            side.text(
                0.0, i + 0.3, f"{cell.errors} errors", fontsize=7.5, va="center", color="firebrick"
            )
    fig.suptitle(title, fontsize=12, y=0.995)
    fig.tight_layout()
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
