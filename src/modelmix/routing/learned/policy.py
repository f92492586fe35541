"""The pure decision rules shared by the live strategies, training and the benchmark."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: Willingness to pay is searched over 10**knob USD per unit of quality.
KNOB_GRID = tuple(float(x) for x in np.linspace(-4.5, 1.5, 49))


def pick(p: np.ndarray, cost: np.ndarray, log_wtp: float, allowed: np.ndarray | None = None) -> int:
    """The model maximising ``wtp·P(good) - cost``, among ``allowed`` (a boolean mask)."""
    value = p * (10.0**log_wtp) - cost
    if allowed is not None:
        if not allowed.any():
            return int(np.argmin(cost))
        value = np.where(allowed, value, -np.inf)
    return int(np.argmax(value))


def pick_many(p: np.ndarray, cost: np.ndarray, log_wtp: float) -> np.ndarray:
    """``pick`` for every row of (n, M) arrays."""
    out: np.ndarray = np.argmax(p * (10.0**log_wtp) - cost, axis=1)
    return out


def logit(p: float) -> float:
    q = min(max(p, 0.02), 0.98)
    return math.log(q / (1 - q))


def gate_features(
    answers: Sequence[str | None], p: Sequence[float]
) -> tuple[list[float], str | None, int]:
    """Features of a cascade state (the called models' extracted answers and their predicted
    P(good)), the best-supported answer and the index of the call that gave it.

    Support of an answer = sum over the models giving it of ``logit(p) + 1``.
    """
    support: dict[str, float] = {}
    count: dict[str, int] = {}
    first: dict[str, int] = {}
    best_p: dict[str, float] = {}
    for i, (a, q) in enumerate(zip(answers, p, strict=True)):
        if a is None:
            continue
        support[a] = support.get(a, 0.0) + logit(q) + 1.0
        count[a] = count.get(a, 0) + 1
        first.setdefault(a, i)
        best_p[a] = max(best_p.get(a, 0.0), q)
    n = len(answers)
    if not support:
        return [0.0, 0.0, 0.0, 0.0, float(n), 0.0, 0.0, float(n)], None, n - 1
    ranked = sorted(support, key=lambda a: (-support[a], -count[a], first[a]))
    top = ranked[0]
    s1 = support[top]
    s2 = support[ranked[1]] if len(ranked) > 1 else 0.0
    feats = [
        s1,
        s2,
        s1 - s2,
        float(count[top]),
        float(n - count[top]),
        best_p[top],
        1.0 if count[top] == n else 0.0,
        float(n),
    ]
    return feats, top, first[top]


def agreed(answers: Sequence[str | None], need: int) -> bool:
    """Some answer was given by at least ``need`` of the calls."""
    counts: dict[str, int] = {}
    for a in answers:
        if a is not None:
            counts[a] = counts.get(a, 0) + 1
            if counts[a] >= need:
                return True
    return False
