"""Labelled routing data: the shared JSONL format (one prompt, every model's outcome) and prices.

Rows are read into arrays once; routers train on them and the benchmark replays them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson


@dataclass(slots=True)
class RoutingData:
    ids: list[str]
    categories: list[str]
    prompts: list[str]
    models: list[str]
    score: np.ndarray  # (n, M)
    prompt_tokens: np.ndarray  # (n, M)
    completion_tokens: np.ndarray  # (n, M)
    answers: list[list[str | None]]  # (n, M)
    #: USD per token (input, output) per model.
    prices: dict[str, tuple[float, float]]

    @property
    def cost(self) -> np.ndarray:
        """(n, M) USD cost of every call."""
        pin = np.array([self.prices[m][0] for m in self.models])
        pout = np.array([self.prices[m][1] for m in self.models])
        out: np.ndarray = self.prompt_tokens * pin + self.completion_tokens * pout
        return out

    def subset(self, rows: np.ndarray) -> RoutingData:
        idx = [int(i) for i in rows]
        return RoutingData(
            [self.ids[i] for i in idx],
            [self.categories[i] for i in idx],
            [self.prompts[i] for i in idx],
            self.models,
            self.score[rows],
            self.prompt_tokens[rows],
            self.completion_tokens[rows],
            [self.answers[i] for i in idx],
            self.prices,
        )

    def keep_models(self, models: Sequence[str]) -> RoutingData:
        """The same prompts with only ``models`` (in that order): another portfolio."""
        unknown = [m for m in models if m not in self.models]
        if unknown:
            raise ValueError(f"not in the data: {', '.join(unknown)}")
        if len(set(models)) < 2:
            raise ValueError("a portfolio needs at least two models")
        cols = [self.models.index(m) for m in models]
        return RoutingData(
            self.ids,
            self.categories,
            self.prompts,
            list(models),
            self.score[:, cols],
            self.prompt_tokens[:, cols],
            self.completion_tokens[:, cols],
            [[row[j] for j in cols] for row in self.answers],
            {m: self.prices[m] for m in models},
        )

    def __len__(self) -> int:
        return len(self.ids)


def draw_portfolio(models: Sequence[str], size: int, seed: int) -> list[str]:
    """``size`` of ``models`` drawn at random (file order kept): a portfolio to test routers
    on, e.g. one whose strongest model is not the strongest of the file."""
    if not 2 <= size <= len(models):
        raise ValueError(f"a portfolio of {size} models: need 2..{len(models)}")
    keep = np.random.default_rng(seed).choice(len(models), size, replace=False)
    return [models[j] for j in sorted(int(k) for k in keep)]


def load_prices(path: str | Path) -> dict[str, tuple[float, float]]:
    """``{model: {"input_per_mtok", "output_per_mtok"}}`` -> USD per token."""
    raw = orjson.loads(Path(path).read_bytes())
    return {
        m: (float(v["input_per_mtok"]) / 1e6, float(v["output_per_mtok"]) / 1e6)
        for m, v in raw.items()
    }


def load_data(
    path: str | Path, prices: dict[str, tuple[float, float]], models: list[str] | None = None
) -> RoutingData:
    rows = [orjson.loads(line) for line in Path(path).read_bytes().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no rows")
    if models is None:
        models = sorted(set.intersection(*(set(r["outcomes"]) for r in rows)))
    missing = [m for m in models if m not in prices]
    if missing:
        raise ValueError(f"no price for {', '.join(missing)}")
    n, k = len(rows), len(models)
    score = np.zeros((n, k))
    pt = np.zeros((n, k))
    ct = np.zeros((n, k))
    answers: list[list[str | None]] = []
    for i, r in enumerate(rows):
        outs = r["outcomes"]
        row_answers: list[str | None] = []
        for j, m in enumerate(models):
            o = outs[m]
            score[i, j] = float(o["score"])
            pt[i, j] = float(o["prompt_tokens"])
            ct[i, j] = float(o["completion_tokens"])
            a = o.get("answer")
            row_answers.append(None if a is None else str(a))
        answers.append(row_answers)
    return RoutingData(
        [str(r["id"]) for r in rows],
        [str(r.get("category") or "") for r in rows],
        [str(r["prompt"]) for r in rows],
        list(models),
        score,
        pt,
        ct,
        answers,
        {m: prices[m] for m in models},
    )
