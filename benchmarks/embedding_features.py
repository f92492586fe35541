"""Would the sentence embedding help as extra features of the learned heads? (issue 11, point 3)

The learned router's quality heads are a ridge regression on hashed word n-grams and a few
dense features (``routing/learned/calibrate.py``). This appends the shipped static MiniLM
embedding (64 dimensions, ``routing/learned/embedding.py``) to that design with a weight ``w``
(``w = 0``: the heads as shipped) and measures, on prompts the heads did not train on, how well
their predictions rank the outcomes:

* ZeroEval (24 models): the mean over models of the AUC of the predicted score for the
  model's actual score (1 or 0);
* MMLU (strong vs weak model, 3,000-prompt subsample, seed 0): the AUC of the predicted gain
  (strong minus weak) for "the strong model is right and the weak one is not", the ranking
  RouteLLM's metrics are made of.

Both out of fold (5 random folds) and leave-task-out (whole categories held out, as
``modelmix bench routing --split task``). Prints one table; about a minute of CPU.

    MODELMIX_ROUTING_DATA=../shared/data/routing python3 benchmarks/embedding_features.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from modelmix.bench.routing import subsample, task_fold_ids
from modelmix.routing.learned.calibrate import fold_ids
from modelmix.routing.learned.data import RoutingData, load_data, load_prices
from modelmix.routing.learned.embedding import default_embedding
from modelmix.routing.learned.features import feature_matrix
from modelmix.routing.learned.model import RidgeSolver, dense_stats, standardise

WEIGHTS = (0.0, 1.0, 3.0, 10.0)


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """Probability that a random positive ranks above a random negative (ties count half)."""
    pos, neg = x[y > 0.5], x[y <= 0.5]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.r_[pos, neg], kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    both = np.r_[pos, neg]
    for v in np.unique(both):  # average ranks over ties
        tie = both == v
        ranks[tie] = ranks[tie].mean()
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def oof_scores(design: np.ndarray, data: RoutingData, fid: np.ndarray) -> np.ndarray:
    """Each prompt's predicted score per model from heads fitted without its fold."""
    solver = RidgeSolver(design, 1.0)
    pred = np.zeros(data.score.shape)
    for f in np.unique(fid):
        tr, te = np.where(fid != f)[0], np.where(fid == f)[0]
        pred[te] = solver.predict(tr, solver.fit(tr, data.score), te)
    return pred


def ranking(pred: np.ndarray, data: RoutingData) -> float:
    """Mean per-model AUC (many models) or the AUC of the predicted gain (two models)."""
    S = data.score
    if S.shape[1] != 2:
        return float(np.nanmean([auc(pred[:, j], S[:, j]) for j in range(S.shape[1])]))
    strong = int(np.argmax(S.mean(axis=0)))
    weak = 1 - strong
    won = ((S[:, strong] > 0.5) & (S[:, weak] <= 0.5)).astype(float)
    return auc(pred[:, strong] - pred[:, weak], won)


def measure(name: str, data: RoutingData, table: Table) -> None:
    X = feature_matrix(data.prompts)
    mu, sd = dense_stats(X)
    Z = standardise(X, mu, sd).astype(np.float64)
    E = default_embedding().embed_many(data.prompts).astype(np.float64)
    splits = {"5-fold": fold_ids(len(data), 5, 0)}
    by_task = task_fold_ids(data.categories, 5, 0)
    if by_task is not None:
        splits["leave-task-out"] = by_task
    for split, fid in splits.items():
        preds = [oof_scores(np.hstack([Z, w * E]), data, fid) for w in WEIGHTS]
        cells = [f"{ranking(p, data):.4f}" for p in preds]
        table.add_row(name, split, *cells)


def main() -> None:
    root = Path(os.environ.get("MODELMIX_ROUTING_DATA", "../shared/data/routing"))
    zero = load_data(root / "zeroeval-dev.jsonl", load_prices(root / "models-zeroeval.json"))
    mmlu = load_data(root / "routellm-mmlu.jsonl", load_prices(root / "models-routellm.json"))
    table = Table(title="Heads' ranking on prompts not trained on, with the embedding appended (w)")
    table.add_column("data")
    table.add_column("split")
    for w in WEIGHTS:
        table.add_column("shipped (w=0)" if w == 0 else f"w={w:g}", justify="right")
    measure("ZeroEval: mean AUC per model", zero, table)
    measure("MMLU 3,000: AUC of the gain", subsample(mmlu, 3000, 0), table)
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
