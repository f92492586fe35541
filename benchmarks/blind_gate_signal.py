"""What the answer-blind cascade's gate can see, out of fold: AUCs on held-out prompts.

For each fold, a router artifact (with its answer-blind gate) is trained on the other folds;
on the held-out prompts the gate's first pick is made, its cheap call's completion tokens are
read (as the gateway would) and the gate gives P(cheap answer good). Printed, pooled and per
category: how well the heads' P(good) alone and the gate rank the cheap answer's failures
(AUC), and, among the prompts where the cheap answer is wrong, how often the strong model is
right and how well the gate's suspicion ranks those (the gain an escalation buys).

Run: PYTHONPATH=src python benchmarks/blind_gate_signal.py [--split task]
(``MODELMIX_ROUTING_DATA`` overrides where the shared routing data is.)
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from modelmix.bench.routing import task_fold_ids
from modelmix.routing.learned.blind_strategy import BlindCascadeStrategy
from modelmix.routing.learned.calibrate import fold_ids, train_artifact
from modelmix.routing.learned.data import RoutingData, load_data, load_prices
from modelmix.tokens import count_tokens

DATA = Path(
    os.environ.get(
        "MODELMIX_ROUTING_DATA",
        Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "routing",
    )
)


def auc(positive: np.ndarray, score: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counting one half."""
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + ties / 2)


def held_out(data: RoutingData, fid: np.ndarray) -> dict[str, np.ndarray]:
    """Per prompt, from the artifact of the folds it is not in: the heads' P(good) of the
    cheap pick, the gate's P(good) after its call, and the cheap and strong scores."""
    n = len(data)
    keys = ("heads", "gate", "cheap", "strong", "cheap_cost", "strong_cost")
    out = {k: np.zeros(n) for k in keys}
    for f in np.unique(fid):
        te = np.where(fid == f)[0]
        art = train_artifact(data.subset(np.where(fid != f)[0]))
        s = BlindCascadeStrategy("b", art, tau=0.5)
        strong = data.models.index(s.gate.strong)
        for i in te:
            seen = count_tokens(data.prompts[i])
            j, heads = s.first_call(data.prompts[i], seen)
            col = data.models.index(art.models[j])
            out["heads"][i] = heads["p"]
            out["gate"][i] = s.p_good(j, heads, int(data.completion_tokens[i, col]), seen)
            out["cheap"][i] = data.score[i, col]
            out["strong"][i] = data.score[i, strong]
            out["cheap_cost"][i] = data.cost[i, col]
            out["strong_cost"][i] = data.cost[i, strong]
    return out


def report(name: str, r: dict[str, np.ndarray], rows: np.ndarray) -> None:
    bad = r["cheap"][rows] < 1.0
    wrong = rows[bad]
    rescued = r["strong"][wrong] >= 1.0
    print(
        f"{name:12s} {len(rows):6d} {bad.mean():7.1%} "
        f"{auc(bad, -r['heads'][rows]):8.3f} {auc(bad, -r['gate'][rows]):8.3f} "
        f"{rescued.mean():9.1%} {auc(rescued, -r['gate'][wrong]):9.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("kfold", "task"), default="kfold")
    split = parser.parse_args().split
    data = load_data(DATA / "zeroeval-dev.jsonl", load_prices(DATA / "models-zeroeval.json"))
    fid = task_fold_ids(data.categories, 5, 0) if split == "task" else None
    if fid is None:
        fid = fold_ids(len(data), 5, 0)
    r = held_out(data, fid)
    print(f"answer-blind gate on held-out prompts ({split}); AUCs rank the cheap answer's failure")
    print(
        f"{'category':12s} {'prompts':>6s} {'cheap ✗':>7s} {'AUC heads':>8s} {'AUC gate':>8s} "
        f"{'strong ✓|✗':>9s} {'AUC gain':>9s}"
    )
    cats = np.array(data.categories)
    for c in sorted(set(data.categories)):
        report(c, r, np.where(cats == c)[0])
    report("all", r, np.arange(len(data)))
    perfect(r)


def perfect(r: dict[str, np.ndarray]) -> None:
    """The room a better verifier would have: the cheap pick alone, and a gate that escalates
    exactly the cheap answer's failures, as shares of always-strong's quality and cost."""
    best_q, best_c = r["strong"].mean(), r["strong_cost"].sum()
    fail = r["cheap"] < 1.0
    q = np.where(fail, r["strong"], r["cheap"]).mean()
    c = (r["cheap_cost"] + np.where(fail, r["strong_cost"], 0.0)).sum()
    print(
        f"cheap pick alone: {r['cheap'].mean() / best_q:.1%} of the strong model's quality at "
        f"{r['cheap_cost'].sum() / best_c:.1%} of its cost; a perfect gate (escalating exactly "
        f"the cheap failures, {fail.mean():.1%} of prompts): {q / best_q:.1%} at {c / best_c:.1%}"
    )


if __name__ == "__main__":
    main()
