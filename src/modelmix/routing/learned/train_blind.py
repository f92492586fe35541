"""Training the answer-blind cascade's gate (``BlindGate``) from labelled traffic.

Everything is measured on prompts the parts did not train on. The inputs are the heads'
out-of-fold predictions (``train_artifact``); for each candidate first pick (a log10
willingness to pay of the learned router), the gate is fitted on all folds but one and the
held-back fold is replayed: the cheap call's completion tokens are read, the gate escalates to
the strong model when P(cheap answer good) < ``tau``, and the realised share of the best
model's quality and of its cost are recorded per ``tau`` (the calibration). The first pick kept
is the one whose held-back curve reaches 95% of the best model's quality cheapest. The shipped
gate is then refitted on every row.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modelmix.routing.learned.blind import BlindGate, blind_features
from modelmix.routing.learned.calibration import Calibration
from modelmix.routing.learned.data import RoutingData
from modelmix.routing.learned.model import fit_logistic
from modelmix.routing.learned.policy import pick_many
from modelmix.routing.learned.train_staged import share_se

#: Candidate first picks (log10 willingness to pay of the learned router).
FIRST_KNOBS = (-3.0, -2.75, -2.5, -2.25, -2.0, -1.75)
#: The gate's threshold: escalate when P(cheap answer good) < tau.
TAU_GRID = tuple(round(float(x), 3) for x in np.linspace(0.0, 1.0, 51))
#: The quality share whose cost picks the first knob.
PICK_AT = 0.95


@dataclass(slots=True)
class BlindInputs:
    """The heads' out-of-fold view of the training prompts (arrays (n, M) unless noted)."""

    data: RoutingData
    p: np.ndarray  # P(good)
    log_tokens: np.ndarray  # predicted log1p completion tokens
    token_var: np.ndarray  # (M,) residual variance of the log tokens
    cost: np.ndarray  # predicted cost of a call
    seen: np.ndarray  # (n,) prompt tokens as the gateway counts them
    category: np.ndarray  # (n,) predicted category index
    n_categories: int

    def features(self, cheap: np.ndarray) -> np.ndarray:
        """The gate's features after calling ``cheap`` (one model index per prompt)."""
        rows = np.arange(len(cheap))
        return blind_features(
            self.p[rows, cheap],
            self.log_tokens[rows, cheap],
            self.token_var[cheap],
            self.data.completion_tokens[rows, cheap],
            self.seen,
            self.category,
            self.n_categories,
        )


def _standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(axis=0)
    sd = x.std(axis=0)
    return mu, np.where(sd > 1e-9, sd, 1.0)


def fit_gate(x: np.ndarray, good: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """(weights, mu, sd) of the logistic P(cheap answer good) on features ``x``."""
    mu, sd = _standardise(x)
    w = fit_logistic((x - mu) / sd, good, l2=1.0)
    return [float(v) for v in w], [float(v) for v in mu], [float(v) for v in sd]


def held_back_p(x: np.ndarray, good: np.ndarray, fid: np.ndarray) -> np.ndarray:
    """P(cheap answer good) of every row from a gate fitted on the other folds."""
    out = np.zeros(len(x))
    for f in np.unique(fid):
        tr, te = fid != f, fid == f
        w, mu, sd = fit_gate(x[tr], good[tr])
        gate = BlindGate(0.0, "", 0, w, mu, sd)
        out[te] = gate.p_good(x[te])
    return out


def replay(
    p_good: np.ndarray, cheap: np.ndarray, strong: int, data: RoutingData
) -> tuple[np.ndarray, np.ndarray]:
    """(score, cost) per row (n, len(TAU_GRID)) of the cascade at every ``tau``."""
    rows = np.arange(len(cheap))
    cost = data.cost
    s_cheap, s_strong = data.score[rows, cheap], data.score[:, strong]
    c_cheap, c_strong = cost[rows, cheap], cost[:, strong]
    tau = np.asarray(TAU_GRID)[None, :]
    escalate = (p_good[:, None] < tau) & (cheap != strong)[:, None]
    scores = np.where(escalate, s_strong[:, None], s_cheap[:, None])
    costs = c_cheap[:, None] + np.where(escalate, c_strong[:, None], 0.0)
    return scores, costs


def cost_at(share: list[float], cost_share: list[float], target: float) -> float:
    """The held-back cost share at which the curve first reaches ``target`` (inf: never)."""
    for k, s in enumerate(share):
        if s >= target:
            if k == 0 or share[k - 1] >= s:
                return cost_share[k]
            f = (target - share[k - 1]) / (s - share[k - 1])
            return cost_share[k - 1] + f * (cost_share[k] - cost_share[k - 1])
    return float("inf")


def has_lengths(data: RoutingData) -> bool:
    """Whether the completion lengths vary for some model (a file whose completions all have
    one length, e.g. one-token multiple-choice answers, gives the gate nothing to read)."""
    ct = data.completion_tokens
    return bool(len(ct)) and bool((ct.max(axis=0) > ct.min(axis=0)).any())


def train_blind(inputs: BlindInputs, fid: np.ndarray, best: int) -> BlindGate | None:
    """The gate for the first pick whose held-back curve is cheapest at ``PICK_AT`` (None
    when the completion lengths carry nothing: ``has_lengths``)."""
    data = inputs.data
    if not has_lengths(data):
        return None
    best_q = max(float(data.score[:, best].mean()), 1e-9)
    best_c = max(float(data.cost[:, best].sum()), 1e-12)
    chosen: tuple[float, float, Calibration, np.ndarray, np.ndarray] | None = None
    for knob in FIRST_KNOBS:
        cheap = pick_many(inputs.p, inputs.cost, knob)
        x = inputs.features(cheap)
        good = data.score[np.arange(len(cheap)), cheap]
        scores, costs = replay(held_back_p(x, good, fid), cheap, best, data)
        share = [float(v) for v in scores.mean(axis=0) / best_q]
        cost_share = [float(v) for v in costs.sum(axis=0) / best_c]
        cal = Calibration(list(TAU_GRID), share, cost_share, share_se(scores, data.score[:, best]))
        price = cost_at(share, cost_share, PICK_AT)
        if chosen is None or price < chosen[0]:
            chosen = (price, knob, cal, x, good)
    assert chosen is not None
    _, knob, cal, x, good = chosen
    w, mu, sd = fit_gate(x, good)
    return BlindGate(knob, data.models[best], inputs.n_categories, w, mu, sd, cal)
