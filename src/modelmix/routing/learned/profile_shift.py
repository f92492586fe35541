"""Profile targets that hold on unseen categories: ``shift`` for the profile router.

The profile router (``LearnedStrategy`` with ``profiles``) keeps, per prompt, the cheapest
model whose P(good) reaches a threshold times the best candidate's; its table (quality_target
-> threshold) is measured on random folds, where a held-back prompt's category was trained on.
On an unseen category the difficulty head's easiness is off and the table's promise falls
short. As ``shift`` does for the willingness to pay, training measures the same table on folds
of whole categories too, and a prompt the category head cannot place (its largest output
under a ``threshold``) gets a raised per-prompt threshold: the gap to 1 shrunk by ``lift``
(``raise_threshold``). The pair is chosen on the training data so that the two tables agree
(``shift.fit``), and a target maps through their mean.
"""

from __future__ import annotations

import numpy as np

from modelmix.routing.learned import shift

#: Shares of the gap between the threshold and 1 closed for a prompt the router cannot place.
LIFTS = (0.25, 0.5, 0.75, 1.0)


def raise_threshold(threshold: float, lift: float) -> float:
    """The per-prompt threshold for an unplaced prompt: ``lift`` of the gap to 1 closed."""
    return 1.0 - (1.0 - threshold) * (1.0 - lift)


def choices(held: shift.Held, knob: float, threshold: float, lift: float) -> np.ndarray:
    """Per prompt, the cheapest model whose P(good) reaches ``knob`` times the best one's,
    ``knob`` raised by ``lift`` for a prompt whose confidence is under ``threshold``."""
    per_prompt = np.where(held.confidence < threshold, raise_threshold(knob, lift), knob)
    ok = held.p >= per_prompt[:, None] * held.p.max(axis=1, keepdims=True)
    out: np.ndarray = np.where(ok, held.cost, np.inf).argmin(axis=1)
    return out


def measure(
    S: np.ndarray,
    cost: np.ndarray,
    held: shift.Held,
    knobs: np.ndarray,
    threshold: float,
    lift: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per threshold in ``knobs``: the realised scores per prompt (n, K) and the cost share of
    the best model (``shift.measure`` with the profile rule)."""
    return shift.measure(S, cost, held, knobs, threshold, lift, rule=choices)


def fit(
    S: np.ndarray, cost: np.ndarray, random: shift.Held, grouped: shift.Held, grid: np.ndarray
) -> shift.ShiftCalibration:
    """The confidence threshold and lift under which the random-fold and grouped-fold profile
    tables agree, and the promised table (their mean); ``boost`` holds the lift."""
    return shift.fit(S, cost, random, grouped, grid, replay=measure, boosts=LIFTS)
