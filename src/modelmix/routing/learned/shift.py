"""Targets that hold on unseen tasks: the knob table measured with whole categories held out.

The willingness-to-pay table (``calibrate``) is measured on random folds: a held-back prompt's
category was trained on. A prompt of a category the router never saw is routed worse (its
predicted category is wrong, so is that category's prior; the heads' scores are compressed,
so fewer prompts reach the strong model), and the table's promise falls short there (on
MMLU, with whole subject groups held out, 2.4 points at 0.90 and 0.95).

With enough categories (``MIN_CATEGORIES``; a handful would make holding one out far too
pessimistic), training cross-fits a second time with folds of whole categories, as an unseen
task is. The two measurements differ by the prompts the router cannot place: whose category
head is unsure (its largest output under a ``threshold``, an out-of-fold quantile). Such a
prompt gets a higher willingness to pay (``boost`` decades). The pair is chosen on the
training data so that the table measured on random folds and the one on grouped folds agree
(at most ``TOLERANCE`` apart over the targets a user asks for, at the lowest cost; no boost
when they already agree), and the promised share is their mean: a target then holds within
half their difference whether the traffic is of the training tasks or of new ones.

The boost applies to ``quality_target`` routes only (a raw ``wtp`` is served as asked); it
costs a comparison per decision.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelmix.routing.learned.calibration import Calibration

#: Categories needed before whole categories are held out in training.
MIN_CATEGORIES = 10
#: Out-of-fold quantiles of the category head's confidence tried as the threshold.
QUANTILES = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
#: Boosts of log10 willingness to pay tried for a prompt the router cannot place.
BOOSTS = (0.25, 0.5, 0.75, 1.0, 1.5)
#: The two tables may differ by this much (share of the best model's quality).
TOLERANCE = 0.01
#: The promised shares over which the tables must agree (the targets users ask for).
SPAN = (0.8, 0.995)
#: Targets at which a candidate's cost is compared.
COST_TARGETS = (0.85, 0.9, 0.95, 0.98)


@dataclass(slots=True)
class ShiftCalibration:
    """``threshold``: category confidence under which a prompt is unplaced; ``boost``: log10
    willingness to pay added for it; ``calibration``: knob -> promised share (the mean of the
    random-fold and grouped-fold shares), cost share and standard error; ``random`` and
    ``grouped``: the two measured shares per knob."""

    threshold: float
    boost: float
    calibration: Calibration
    random: list[float]
    grouped: list[float]

    def boost_for(self, confidence: float) -> float:
        """The boost for a prompt whose category head's largest output is ``confidence``."""
        return self.boost if confidence < self.threshold else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "boost": self.boost,
            "calibration": self.calibration.as_dict(),
            "random": self.random,
            "grouped": self.grouped,
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> ShiftCalibration:
        c = d["calibration"]
        cal = Calibration(
            [float(x) for x in c["knob"]],
            [float(x) for x in c["share"]],
            [float(x) for x in c.get("cost_share", [])],
            [float(x) for x in c.get("se", [])],
        )
        return ShiftCalibration(
            float(d["threshold"]),
            float(d["boost"]),
            cal,
            [float(x) for x in d["random"]],
            [float(x) for x in d["grouped"]],
        )


@dataclass(slots=True)
class Held:
    """One out-of-fold pass: per prompt and model P(good) and predicted cost, and per prompt
    the category head's largest output."""

    p: np.ndarray
    cost: np.ndarray
    confidence: np.ndarray


def group_folds(categories: list[str], folds: int, seed: int) -> np.ndarray | None:
    """Fold per prompt with whole categories together (shuffled into ``folds`` groups); None
    with fewer than ``MIN_CATEGORIES`` categories."""
    names = sorted(set(categories))
    if len(names) < max(MIN_CATEGORIES, folds):
        return None
    order = np.random.default_rng(seed).permutation(len(names))
    group = {names[k]: pos % folds for pos, k in enumerate(order)}
    return np.array([group[c] for c in categories])


def choices(held: Held, knob: float, threshold: float, boost: float) -> np.ndarray:
    """Per prompt, the model maximising ``wtp·P(good) - cost`` at ``knob`` (log10 wtp),
    ``boost`` decades higher for a prompt whose confidence is under ``threshold``."""
    log_wtp = knob + np.where(held.confidence < threshold, boost, 0.0)
    out: np.ndarray = np.argmax(held.p * (10.0**log_wtp)[:, None] - held.cost, axis=1)
    return out


def measure(
    S: np.ndarray,
    cost: np.ndarray,
    held: Held,
    knobs: np.ndarray,
    threshold: float,
    boost: float,
    rule: Callable[[Held, float, float, float], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per knob: the realised scores per prompt (n, K) and the cost share of the best model
    (the column of ``S`` with the highest mean); ``rule`` picks each prompt's model (default:
    the willingness-to-pay rule, ``choices``)."""
    pick = choices if rule is None else rule
    best = int(np.argmax(S.mean(axis=0)))
    rows = np.arange(len(S))
    scores = np.zeros((len(S), len(knobs)))
    costs = np.zeros(len(knobs))
    for k, knob in enumerate(knobs):
        ch = pick(held, float(knob), threshold, boost)
        scores[:, k] = S[rows, ch]
        costs[k] = cost[rows, ch].sum() / max(cost[:, best].sum(), 1e-12)
    return scores, costs


def _cost_at(shares: np.ndarray, costs: np.ndarray) -> float:
    """Mean cost share at the first knob whose share reaches each of ``COST_TARGETS``."""
    top = np.maximum.accumulate(shares)
    idx = [int(np.searchsorted(top, t)) for t in COST_TARGETS]
    return float(np.mean([costs[min(i, len(costs) - 1)] for i in idx]))


def _spread(r: np.ndarray, g: np.ndarray) -> float:
    """The largest difference of the two tables where their mean is a target users ask for."""
    mid = (r + g) / 2
    inside = (mid >= SPAN[0]) & (mid <= SPAN[1])
    return float(np.abs(r - g)[inside].max()) if inside.any() else 0.0


#: ``measure``'s signature: (scores, cost, held, knobs, threshold, boost) -> (scores, costs).
Measure = Callable[
    [np.ndarray, np.ndarray, Held, np.ndarray, float, float], tuple[np.ndarray, np.ndarray]
]


def fit(
    S: np.ndarray,
    cost: np.ndarray,
    random: Held,
    grouped: Held,
    knobs: np.ndarray,
    replay: Measure = measure,
    boosts: Sequence[float] = BOOSTS,
) -> ShiftCalibration:
    """The threshold and boost under which the random-fold and grouped-fold tables agree
    (none when they do without; else the cheapest within ``TOLERANCE``, else the closest),
    and the promised table. ``replay`` routes the held-back prompts at each knob with a
    candidate boost (``measure``: the willingness-to-pay rule; ``profile_shift``: the
    profile router's threshold), ``boosts`` the candidates tried."""
    best = int(np.argmax(S.mean(axis=0)))
    bq = max(float(S[:, best].mean()), 1e-12)
    found: list[tuple[bool, float, float, Any]] = []
    for q, boost in itertools.chain([(0.0, 0.0)], itertools.product(QUANTILES[1:], boosts)):
        # q = 0: no prompt is boosted (under the smallest confidence seen, and finite)
        threshold = float(np.quantile(random.confidence, q) if q > 0 else _floor(random))
        rs, rc = replay(S, cost, random, knobs, threshold, boost)
        gs, gc = replay(S, cost, grouped, knobs, threshold, boost)
        r, g = rs.mean(axis=0) / bq, gs.mean(axis=0) / bq
        spread = _spread(r, g)
        cost_share = (rc + gc) / 2
        within = spread <= TOLERANCE
        found.append(
            (
                not within,
                _cost_at((r + g) / 2, cost_share) if within else spread,
                len(found),
                (threshold, boost, r, g, cost_share, rs, gs),
            )
        )
    # no boost when the tables already agree; else the cheapest that agrees, or the closest
    plain = found[0]
    pick = plain if not plain[0] else min(found, key=lambda x: x[:3])
    threshold, boost, r, g, cost_share, rs, gs = pick[3]
    se = np.maximum(_se(rs, S[:, best]), _se(gs, S[:, best]))
    table = Calibration(
        [float(k) for k in knobs],
        [float(x) for x in (r + g) / 2],
        [float(x) for x in cost_share],
        [float(x) for x in se],
    )
    return ShiftCalibration(
        float(threshold), float(boost), table, [float(x) for x in r], [float(x) for x in g]
    )


def _floor(held: Held) -> float:
    return float(held.confidence.min()) - 1.0 if len(held.confidence) else 0.0


def _se(scores: np.ndarray, best: np.ndarray) -> np.ndarray:
    """Standard error of each column's share of the best model's quality (paired)."""
    bq = max(float(best.mean()), 1e-9)
    d = (scores - best[:, None]) / bq
    out: np.ndarray = d.std(axis=0) / np.sqrt(max(len(best), 1))
    return out
