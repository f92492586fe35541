"""Routers on portfolios nobody tuned them for: random subsets of the ZeroEval file's 24 models.

For each of ``--portfolios`` random portfolios (size drawn in ``--sizes``; portfolio seed
0, 1, ...), the routing benchmark (``modelmix bench routing``, the same code) trains and replays
every router out of fold (5 random folds) and leave-task-out. Printed per portfolio and split:

* kept: served ``quality_target`` settings (learned, profile and staged cascade, as in the
  benchmark's target table) realised within 1.5 points, pooled over the held-out prompts;
  short: realised more than 1.5 points under the target; over: more than 1.5 points over it
  while a mix of single models reached the target for less (money spent on quality nobody
  asked for; over-delivery is forced when no cheaper setting reaches the target);
* worst: the largest shortfall (points, pooled); task (leave-task-out): the largest
  shortfall on one held-out task, the promise as a user with only that task meets it;
* dom, >AB: served targets a single model of the portfolio beats on both cost and quality,
  and served targets costing more than always-best (the do-no-harm table's columns); dom by:
  the largest margins of such a beat, in points of the best model's quality / of its cost;
* c@best, c@95: the cheapest cost share of always-best at its quality and at 95% of it
  (the best of the three routers);
* AIQ of the learned router, the profile router and the cascade against the single-model
  hull and the category prior ("above": L, P, C for each router above both).

Run: PYTHONPATH=src python3 benchmarks/portfolios.py [--portfolios 6] [--sizes 4-12]
(about a minute per portfolio; ``MODELMIX_ROUTING_DATA`` overrides where the data is.)
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from modelmix.bench import metrics
from modelmix.bench.report import TARGET_TOLERANCE
from modelmix.bench.routing import run_benchmark, summary
from modelmix.routing.learned.data import RoutingData, draw_portfolio, load_data, load_prices

DATA = Path(
    os.environ.get(
        "MODELMIX_ROUTING_DATA",
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routing",
    )
)
SERVED = ("learned", "profile", "cascade")


def judge(s: dict[str, Any]) -> dict[str, Any]:
    """The figures of one benchmark summary that say whether routing held on this portfolio."""
    served = [r for r in s["runs"] if r["router"] in SERVED and r["target"] is not None]
    singles = [(r["cost_share"], r["quality_share"]) for r in s["runs"] if r["family"] == "single"]
    hull = metrics.frontier(singles)
    harm = [h for h in s["do_no_harm"] if h["router"] in SERVED]
    curves = s["curves"]

    def best_share(key: str) -> float | None:
        shares = [curves[n][key] for n in SERVED if curves.get(n, {}).get(key) is not None]
        return min(shares) if shares else None

    def wasteful(r: dict[str, Any]) -> bool:
        """Over the target by more than the tolerance while a mix of single models reached
        the target for less (over-delivery with no cheaper way to the target is no waste)."""
        at = metrics.cost_at(hull, r["target"])
        return at is not None and r["cost_share"] > at

    gaps = [(r, (r["quality_share"] - r["target"]) * 100) for r in served]
    by_name = {r["router"]: r for r in s["runs"] if r["family"] == "single"}
    margins = [
        (
            100 * (by_name[r["dominated_by"]]["quality_share"] - r["quality_share"]),
            100 * (r["cost_share"] - by_name[r["dominated_by"]]["cost_share"]),
        )
        for r in served
        if r["dominated_by"]
    ]
    worst = [min((r.get("by_task") or {"-": 9.9}).values()) - r["target"] for r in served]
    return {
        "kept": sum(abs(g) <= TARGET_TOLERANCE for _, g in gaps),
        "targets": len(gaps),
        "short": sum(g < -TARGET_TOLERANCE for _, g in gaps),
        "over": sum(g > TARGET_TOLERANCE and wasteful(r) for r, g in gaps),
        "worst_gap": min((g for _, g in gaps), default=0.0),
        "worst_task_gap": 100 * min(worst, default=0.0) if s["split"] == "task" else None,
        "dominated": sum(h["targets_dominated"] for h in harm),
        # the largest margins by which a single model beat a served target (points of the
        # best model's quality, points of its cost)
        "dom_by": (max(m[0] for m in margins), max(m[1] for m in margins)) if margins else None,
        "above_best": sum(h["targets_above_best_cost"] for h in harm),
        "at_best": best_share("cost_share_at_best"),
        "at_95": best_share("cost_share_at_95"),
        "aiq": {n: curves[n]["aiq"] for n in (*SERVED, "single-model hull")},
        "prior": curves["category-prior"]["aiq"],
        "best_model": s["best_model"],
    }


def pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def row(seed: int, models: list[str], split: str, j: dict[str, Any]) -> str:
    a = j["aiq"]
    bar = max(a["single-model hull"], j["prior"])
    beats = "".join(n[0].upper() if a[n] > bar else "-" for n in SERVED)
    task = "-" if j["worst_task_gap"] is None else f"{j['worst_task_gap']:+.1f}"
    dom_by = "-" if j["dom_by"] is None else f"{j['dom_by'][0]:.1f}/{j['dom_by'][1]:.1f}"
    return (
        f"{seed:>4}  {len(models):>2}  {j['best_model'][:26]:26}  {split:5}  "
        f"{j['kept']:>2}/{j['targets']:<2}  {j['short']:>5}  {j['over']:>4}  "
        f"{j['worst_gap']:+6.1f}  {task:>6}  {j['dominated']:>3} {dom_by:>9}  "
        f"{j['above_best']:>3}  "
        f"{pct(j['at_best']):>7}  {pct(j['at_95']):>6}  {a['learned']:.3f}  {a['profile']:.3f}  "
        f"{a['cascade']:.3f}  {a['single-model hull']:.3f}  {j['prior']:.3f}  {beats}"
    )


HEADER = (
    "seed   n  best model                  split  kept   short  over   worst    task  dom"
    "    dom by  >AB   c@best    c@95  learnd profil cascad hull   prior  above"
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--portfolios", type=int, default=6)
    ap.add_argument("--sizes", default="4-12", help="portfolio sizes, low-high (inclusive)")
    ap.add_argument("--splits", default="kfold,task")
    args = ap.parse_args()
    lo, hi = (int(x) for x in args.sizes.split("-"))
    prices = load_prices(DATA / "models-zeroeval.json")
    full: RoutingData = load_data(DATA / "zeroeval-dev.jsonl", prices)
    sizes = np.random.default_rng(1234).integers(lo, hi + 1, size=args.portfolios)
    print(
        f"{args.portfolios} random portfolios of the {len(full.models)} ZeroEval models, "
        f"{len(full)} prompts; kept = within {TARGET_TOLERANCE} points; dom / >AB = served "
        "targets beaten by a single model / above always-best's cost; c@best, c@95 = cheapest "
        "cost share of always-best at its quality / 95% (learned, profile, cascade)\n"
    )
    print(HEADER)
    started = time.perf_counter()
    for seed, size in enumerate(int(x) for x in sizes):
        models = draw_portfolio(full.models, size, seed)
        data = full.keep_models(models)
        for split in args.splits.split(","):
            j = judge(summary(run_benchmark(data, folds=5, seed=0, split=split)))
            line = row(seed, models, split, j)
            print(line, flush=True)
        print(f"      models: {', '.join(models)}", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
