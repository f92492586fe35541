"""The per-subject calibration offset: pure arithmetic, no I/O.

For one subject's labelled requests, pairs (predicted P(good) of the served model, accepted in
[0, 1]) give an offset ``d`` on the log-odds: the subject accepts ``sigmoid(logit(p) + d)``.
``d`` is the posterior mode of a logistic likelihood with a normal prior centred on 0 (the
global router) worth ``prior_strength`` pseudo-observations (each with the information of one
observation at p = 1/2), so few labels move it little (shrinkage); it is then clipped to
``[-cap, cap]`` so one subject's feedback can move its routing only so far. No labels: exactly
0, routing as the global router.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

_EPS = 1e-6
#: Fisher information of one Bernoulli observation at p = 1/2.
_UNIT_INFO = 0.25


def logit(p: float) -> float:
    p = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(p / (1.0 - p))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@dataclass(frozen=True, slots=True)
class Estimate:
    subject: str
    offset: float  # log-odds, after shrinkage and the cap
    raw: float  # posterior mode before the cap
    n: int  # labelled requests
    predicted: float  # mean predicted P(good)
    accepted: float  # mean acceptance


def offset(
    pairs: Iterable[tuple[float, float]], prior_strength: float, cap: float
) -> tuple[float, float]:
    """(capped offset, uncapped posterior mode) for (predicted P(good), accepted) pairs."""
    logits = [(logit(p), min(max(y, 0.0), 1.0)) for p, y in pairs]
    if not logits:
        return 0.0, 0.0
    precision = prior_strength * _UNIT_INFO
    d = 0.0
    for _ in range(50):  # Newton on a concave objective: converges in a few steps
        grad, info = -precision * d, precision
        for z, y in logits:
            s = sigmoid(z + d)
            grad += y - s
            info += s * (1.0 - s)
        step = grad / info
        d += max(-2.0, min(2.0, step))
        if abs(step) < 1e-9:
            break
    return max(-cap, min(cap, d)), d


def estimate(
    subject: str, pairs: list[tuple[float, float]], prior_strength: float, cap: float
) -> Estimate:
    capped, raw = offset(pairs, prior_strength, cap)
    n = len(pairs)
    return Estimate(
        subject,
        capped,
        raw,
        n,
        sum(p for p, _ in pairs) / n if n else 0.0,
        sum(y for _, y in pairs) / n if n else 0.0,
    )


def shifted(p: list[float], d: float) -> list[float]:
    """P(good) per candidate as the subject accepts it (``d == 0``: ``p`` itself)."""
    if d == 0.0:
        return p
    return [sigmoid(logit(q) + d) for q in p]
