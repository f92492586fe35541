"""Judging a routing benchmark's runs against the single models: the hull, do no harm, and
whether a requested ``quality_target`` was met (with a bootstrap interval over prompts).

A setting *does harm* when some single model is better on both axes on the same prompts: more
quality for less money. Serving such a setting is never right, whatever the user asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from modelmix.bench import metrics

#: Bootstrap resamples of the prompts for the intervals.
BOOTSTRAP = 400


def dominating_single(
    cost: float, quality: float, singles: Sequence[tuple[str, float, float]]
) -> str | None:
    """The single model (name, cost, quality) cheaper and better than (cost, quality), if any
    (the cheapest such model)."""
    better = [(c, name) for name, c, q in singles if c < cost and q > quality]
    return min(better)[1] if better else None


def hull_quality(singles: Sequence[tuple[str, float, float]], cost: float) -> float | None:
    """Quality of the single-model hull (mixing single models at random) at ``cost``."""
    return metrics.quality_at(metrics.frontier([(c, q) for _, c, q in singles]), cost)


def share_interval(
    scores: Sequence[float],
    rows: Sequence[int],
    best_scores: np.ndarray,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float]:
    """Bootstrap interval (over prompts) of mean(run's score) / mean(best model's score)."""
    s = np.asarray(scores, dtype=np.float64)
    b = best_scores[np.asarray(rows, dtype=np.int64)]
    if len(s) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(s), size=(BOOTSTRAP, len(s)))
    ratio = s[draw].mean(axis=1) / np.maximum(b[draw].mean(axis=1), 1e-12)
    lo, hi = np.quantile(ratio, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def do_no_harm(rows: list[dict[str, Any]], best_cost: float) -> list[dict[str, Any]]:
    """Per router: how many of its settings a single model beats on both axes, how many cost
    more than always-best, and the same for the settings a user asks for (``quality_target``)."""
    out: list[dict[str, Any]] = []
    for name in dict.fromkeys(r["router"] for r in rows if r["family"] != "single"):
        mine = [r for r in rows if r["router"] == name]
        served = [r for r in mine if r["target"] is not None]
        harm = [r for r in mine if r["dominated_by"]]
        out.append(
            {
                "router": name,
                "settings": len(mine),
                "dominated": len(harm),
                "above_best_cost": sum(r["cost"] > best_cost * (1 + 1e-9) for r in mine),
                "targets": len(served),
                "targets_dominated": sum(bool(r["dominated_by"]) for r in served),
                "targets_above_best_cost": sum(r["cost"] > best_cost * (1 + 1e-9) for r in served),
                "examples": [f"{r['knob']} < {r['dominated_by']}" for r in harm[:3]],
            }
        )
    return out
