"""The staged cascade with one plan (every stage in order) against two (and the plan without
the tie-breaking stage), out of fold, on several fold splits: is the gain a fold artifact?

For each split (``--seeds``: the seed of the 5 random folds; ``--split task``: whole tasks held
out), a router artifact is trained on the other folds; the held-out prompts are replayed through
its staged gate (``train_staged.replay_rows``, the decisions the gateway makes) at every ``lam``
of the routing benchmark's sweep, once with the gate as trained (two plans) and once with its
``direct`` plan removed (one plan: the tables of every stage are the same). Printed per split:
the cost share of always-best at 95%, 99% and 100% of its quality on the frontier, and AIQ;
then, on the first split, a bootstrap over prompts of the difference at 100% and 95%.

Run: PYTHONPATH=src python benchmarks/staged_plans.py [--seeds 0,1,2,3,4] [--split task]
(``MODELMIX_ROUTING_DATA`` overrides where the shared routing data is.)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from modelmix.bench import metrics
from modelmix.bench.routing import CURVE_LAM, task_fold_ids
from modelmix.routing.learned import safety, train_staged
from modelmix.routing.learned.artifact import RouterArtifact
from modelmix.routing.learned.calibrate import fold_ids, train_artifact
from modelmix.routing.learned.data import RoutingData, load_data, load_prices
from modelmix.routing.learned.features import Features
from modelmix.routing.learned.staged import POOLED
from modelmix.routing.learned.train_staged import Replay, replay_rows
from modelmix.tokens import count_tokens

DATA = Path(
    os.environ.get(
        "MODELMIX_ROUTING_DATA",
        Path(__file__).resolve().parents[1].parent / "shared" / "data" / "routing",
    )
)
LAMS = [10.0**x for x in CURVE_LAM]
#: --pooled: the gate also gets tables pooled over every category; compare the predicted
#: category's tables ("one plan" rows) with the pooled tables for the prompts the artifact
#: flags as unlike its training tasks ("two plans" rows), both gates with two plans.
POOLED_CMP = False
#: --pool-on: which prompts the pooled tables decide (novel: flagged by ``is_novel``;
#: lowconf: category probability under ``LOW_CONF``; all: every prompt).
POOL_ON = "novel"
LOW_CONF = 0.8


def replay_fold(data: RoutingData, tr: np.ndarray, te: np.ndarray) -> dict[str, np.ndarray]:
    """(score, cost) matrices (held-out prompts x lam) with two plans and with one."""
    art = train_artifact(data.subset(tr), seed=0)
    gate = art.staged
    assert gate is not None
    test = data.subset(te)
    feats = [art.featurize(t) for t in test.prompts]
    cats = [art.category_of(f) for f in feats]
    toks = np.array([art.predict(f)[1] for f in feats], dtype=float)
    seen = np.array([[float(count_tokens(t))] for t in test.prompts])
    replay = Replay(test, cats, toks, seen)
    stages = [[data.models.index(m) for m in s] for s in gate.stages]
    rows = np.arange(len(te))
    if POOLED_CMP:
        novel = [flagged(art, f) for f in feats]
        for task in sorted(set(test.categories)):
            idx = [k for k, c in enumerate(test.categories) if c == task]
            print(f"  held out {task:24s} n={len(idx):4d} flagged {sum(novel[k] for k in idx):4d}")
        single = safety.task_singles(art.meta, art.models)
        for t in (0.9, 0.95, 0.98, 0.99, 1.0):
            choice = safety.choose(t, [], single)
            print(f"  flagged, quality_target {t}: {'-' if choice is None else choice.describe()}")
        s1, c1 = replay_rows(gate, replay, stages, rows, LAMS)
        pooled = [POOLED if v else c for c, v in zip(cats, novel, strict=True)]
        s2, c2 = replay_rows(gate, Replay(test, pooled, toks, seen), stages, rows, LAMS)
        return {"two": s2, "two_cost": c2, "one": s1, "one_cost": c1}
    s2, c2 = replay_rows(gate, replay, stages, rows, LAMS)
    direct, gate.direct = gate.direct, None
    s1, c1 = replay_rows(gate, replay, stages, rows, LAMS)
    gate.direct = direct
    return {"two": s2, "two_cost": c2, "one": s1, "one_cost": c1}


def flagged(art: RouterArtifact, f: Features) -> bool:
    """Whether the prompt is decided by the pooled tables (``--pool-on``)."""
    if POOL_ON == "all":
        return True
    if POOL_ON == "lowconf":
        z = art.outputs(f)[2 * len(art.models) + 1 :]
        p = np.exp(z - z.max())
        return float(p.max() / p.sum()) < LOW_CONF
    return art.is_novel(f) is not None


def replay_split(data: RoutingData, fid: np.ndarray) -> dict[str, np.ndarray]:
    n = len(data)
    out = {k: np.zeros((n, len(LAMS))) for k in ("two", "two_cost", "one", "one_cost")}
    for f in range(int(fid.max()) + 1):
        tr, te = np.where(fid != f)[0], np.where(fid == f)[0]
        for k, v in replay_fold(data, tr, te).items():
            out[k][te] = v
    return out


def cost_at(data: RoutingData, S: np.ndarray, C: np.ndarray, idx: np.ndarray, q: float) -> float:
    """Cost share of always-best at ``q`` of its quality on the frontier (nan: never)."""
    best = int(np.argmax(data.score.mean(axis=0)))
    bq, bc = data.score[idx, best].mean(), data.cost[idx, best].sum()
    pts = [(C[idx, k].sum() / bc, S[idx, k].mean() / bq) for k in range(S.shape[1])]
    c = metrics.cost_at(metrics.frontier(pts), q)
    return float("nan") if c is None else c


def aiq(data: RoutingData, S: np.ndarray, C: np.ndarray) -> float:
    best = int(np.argmax(data.score.mean(axis=0)))
    total = data.cost.sum(axis=0)
    cheap = int(np.argmin(total))
    floor = (float(total[cheap]), float(data.score[:, cheap].mean()))
    pts = [(float(C[:, k].sum()), float(S[:, k].mean())) for k in range(S.shape[1])]
    return metrics.aiq(pts, floor[0], float(total[best]), floor)


def report(name: str, data: RoutingData, r: dict[str, np.ndarray]) -> None:
    idx = np.arange(len(data))
    for plan in ("one", "two"):
        S, C = r[plan], r[f"{plan}_cost"]
        shares = [cost_at(data, S, C, idx, q) for q in (0.95, 0.99, 1.0)]
        print(
            f"{name:10s} {plan} plan{'s' if plan == 'two' else ' '}  @95% {shares[0]:6.1%}  "
            f"@99% {shares[1]:6.1%}  @100% {shares[2]:6.1%}  AIQ {aiq(data, S, C):.4f}"
        )


def bootstrap(data: RoutingData, r: dict[str, np.ndarray], draws: int) -> None:
    rng = np.random.default_rng(0)
    for q in (1.0, 0.95):
        diffs = []
        for _ in range(draws):
            idx = rng.integers(0, len(data), len(data))
            one = cost_at(data, r["one"], r["one_cost"], idx, q)
            two = cost_at(data, r["two"], r["two_cost"], idx, q)
            if not (np.isnan(one) or np.isnan(two)):
                diffs.append(two - one)
        d = np.array(diffs)
        lo, hi = np.percentile(d, [2.5, 97.5])
        print(
            f"bootstrap @{q:.0%}: two plans - one plan {d.mean():+.1%} of always-best's "
            f"cost (95% interval {lo:+.1%} .. {hi:+.1%}; lower in {np.mean(d < 0):.0%} "
            f"of {len(d)} draws)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--split", choices=("kfold", "task"), default="kfold")
    ap.add_argument("--bootstrap", type=int, default=300)
    ap.add_argument("--pooled", action="store_true")
    ap.add_argument("--pool-on", choices=("novel", "lowconf", "all"), default="novel")
    args = ap.parse_args()
    global POOLED_CMP, POOL_ON
    POOL_ON = args.pool_on
    POOLED_CMP = train_staged.POOL = args.pooled
    data = load_data(DATA / "zeroeval-dev.jsonl", load_prices(DATA / "models-zeroeval.json"))
    first: dict[str, np.ndarray] | None = None
    for seed in [int(s) for s in args.seeds.split(",")]:
        fid = task_fold_ids(data.categories, 5, seed) if args.split == "task" else None
        if fid is None:
            fid = fold_ids(len(data), 5, seed)
        r = replay_split(data, fid)
        report(f"{args.split} s{seed}", data, r)
        first = r if first is None else first
    if first is not None and args.bootstrap:
        bootstrap(data, first, args.bootstrap)


if __name__ == "__main__":
    main()
