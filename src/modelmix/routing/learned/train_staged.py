"""Training a staged cascade's gate (``StagedGate``) from labelled traffic.

The tables are counts over the training prompts of how often an answer with a given support
(which called models gave it) was right, per predicted category and stage. The knob
(``lam``, the price of quality) is calibrated out of fold: the gate is rebuilt on all folds but
one, the held-back fold is replayed through the same decision functions the gateway runs, and
the realised share of the best model's quality at each ``lam`` is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modelmix.routing.learned.artifact import Calibration
from modelmix.routing.learned.data import RoutingData
from modelmix.routing.learned.safety import MAX_TASK_SHARE
from modelmix.routing.learned.staged import POOLED, StagedGate, answer_key, support_masks

#: Models within this much mean quality of the best count as its peers (cheapest one wins).
NEAR = 0.01

#: Categories with fewer labelled prompts do not count as a task of their own.
MIN_CATEGORY = 50

#: The knob grid: lam = 10**x USD per unit of quality.
LAM_GRID = tuple(float(x) for x in np.linspace(-3.5, 0.5, 33))


def default_stages(data: RoutingData, voters: Sequence[int], best: int) -> list[list[int]]:
    """Two cheap voters, then the third, then the strong model, then a second strong opinion
    (called when the strong model's answer is doubtful).

    The strong model is the best of the models within ``NEAR`` of the top mean quality that
    cost at most 1.25 times the cheapest of them: a sample can rank a much dearer twin of the
    best model first by a fraction of a point. The second opinion is the cheapest other model within
    ``2 * NEAR`` of the top and at most 1.5 times the strong model's cost, else the best of
    those costing at most that."""
    stages: list[list[int]] = []
    v = list(voters)
    if len(v) >= 2:
        stages.append(v[:2])
        stages += [[j] for j in v[2:]]
    elif v:
        stages.append(v)
    total = data.cost.sum(axis=0)
    quality = data.score.mean(axis=0)
    top = float(quality.max())
    near = [j for j in range(len(data.models)) if j not in v and quality[j] >= top - NEAR]
    cheap = min((total[j] for j in near), default=0.0)
    peers = [j for j in near if total[j] <= 1.25 * cheap]
    strong = max(peers, key=lambda j: (quality[j], -total[j])) if peers else best
    if strong not in v:
        stages.append([strong])
    used = {j for s in stages for j in s}
    others = [
        j for j in range(len(data.models)) if j not in used and total[j] <= 1.5 * total[strong]
    ]
    close = [j for j in others if quality[j] >= top - 2 * NEAR]
    if close:
        stages.append([min(close, key=lambda j: (total[j], -quality[j]))])
    elif others:
        stages.append([max(others, key=lambda j: (quality[j], -total[j]))])
    return stages


#: Also build tables pooled over every category (key ``POOLED``): measured for prompts unlike
#: every training task and not kept (``benchmarks/staged_plans.py --pooled`` turns it on).
POOL = False


def _keys(cat: str) -> tuple[str, ...]:
    return (cat, POOLED) if POOL else (cat,)


@dataclass(slots=True)
class Replay:
    """What training needs to replay prompts through a gate (all arrays (n, M))."""

    data: RoutingData
    cats: list[str]  # predicted category per prompt (never the label of a decided prompt)
    pred_tokens: np.ndarray  # predicted completion tokens, out of fold
    #: (n, 1) prompt tokens as the gateway counts them (default: the data's counts)
    seen_tokens: np.ndarray | None = None

    def answers(self, i: int, stages: list[list[int]], upto: int) -> list[str | None]:
        """The answers of the models called up to stage ``upto``, as the gateway sees them."""
        return [answer_key(self.data.answers[i][j]) for s in stages[: upto + 1] for j in s]

    def returned(self, stages: list[list[int]], upto: int, mask: int) -> int:
        """The model whose answer is returned: the last caller supporting the answer."""
        flat = [j for s in stages[: upto + 1] for j in s]
        return flat[mask.bit_length() - 1]


def build_gate(
    replay: Replay, stages: list[list[int]], rows: np.ndarray, calibration: Calibration
) -> StagedGate:
    data = replay.data
    names = [[data.models[j] for j in s] for s in stages]
    gate = StagedGate(names, calibration=calibration)
    n_st = len(stages)
    # 1. answer-support tables
    for i in rows:
        i = int(i)
        for cat in _keys(replay.cats[i]):
            for k in range(n_st):
                for _a, mask in support_masks(replay.answers(i, stages, k)).items():
                    ok = float(data.score[i, replay.returned(stages, k, mask)])
                    t = gate.table.setdefault(f"{cat}|{k}|{mask}", [0.0, 0.0])
                    t[0] += ok
                    t[1] += 1.0
                    b = gate.base.setdefault(f"{cat}|{k}|{bin(mask).count('1')}", [0.0, 0.0])
                    b[0] += ok
                    b[1] += 1.0
    # 2. look-ahead: correctness of the chosen answer at every later stage, per state
    for i, cat in ((int(r), c) for r in rows for c in _keys(replay.cats[int(r)])):
        keys: list[str] = []
        right: list[float] = []
        for k in range(n_st):
            top, _p, mask = gate.current(cat, k, replay.answers(i, stages, k))
            keys.append(f"{cat}|{k}|{mask}")
            ok = 0.0 if top is None else float(data.score[i, replay.returned(stages, k, mask)])
            right.append(ok)
        for k, key in enumerate(keys):
            row = gate.ahead.setdefault(key, [[0.0, 0.0] for _ in range(n_st)])
            for j in range(k, n_st):
                row[j][0] += right[j]
                row[j][1] += 1.0
    # 3. later models' completion tokens from the first stage's
    first = stages[0]
    lt = np.log1p(data.completion_tokens)
    seen = lt[:, first].mean(axis=1)
    for s in stages[1:]:
        for j in s:
            X = np.c_[np.ones(len(rows)), np.log1p(replay.pred_tokens[rows, j]), seen[rows]]
            w, *_ = np.linalg.lstsq(X, lt[rows, j], rcond=None)
            var = float(np.var(lt[rows, j] - X @ w))
            gate.tokens[data.models[j]] = [float(x) for x in w] + [var]
    return gate


def direct_stages(stages: list[list[int]]) -> list[list[int]] | None:
    """The plan without the tie-breaking stage (stage 1), when there is a stage after it."""
    return stages[:1] + stages[2:] if len(stages) >= 3 else None


def build_plans(
    replay: Replay, stages: list[list[int]], rows: np.ndarray, calibration: Calibration
) -> StagedGate:
    """The gate of every stage in order and, with three stages or more, the gate of the
    plan without stage 1 (``StagedGate.direct``), on the same rows."""
    gate = build_gate(replay, stages, rows, calibration)
    skip = direct_stages(stages)
    if skip is not None:
        gate.direct = build_gate(replay, skip, rows, Calibration([0.0], [1.0]))
    return gate


@dataclass(slots=True)
class _Trace:
    """One prompt through one plan: predicted cost of each stage, and per stage the state
    (answer, its probability, its mask), the returned answer's score and the cost so far."""

    later: list[float]
    states: list[tuple[str | None, float, int, float, float]]


def _trace(gate: StagedGate, replay: Replay, stages: list[list[int]], i: int) -> _Trace:
    data = replay.data
    pin = np.array([data.prices[m][0] for m in data.models])
    pout = np.array([data.prices[m][1] for m in data.models])
    seen = data.prompt_tokens if replay.seen_tokens is None else replay.seen_tokens
    first_tokens = [
        float(data.completion_tokens[i, j])
        for j in stages[0]
        if answer_key(data.answers[i][j]) is not None
    ]
    later = [
        sum(
            seen[i, min(j, seen.shape[1] - 1)] * pin[j]
            + gate.later_tokens(data.models[j], float(replay.pred_tokens[i, j]), first_tokens)
            * pout[j]
            for j in s
        )
        for s in stages
    ]
    states = []
    spent = 0.0
    for k in range(len(stages)):
        spent += float(data.cost[i, stages[k]].sum())
        top, p, mask = gate.current(replay.cats[i], k, replay.answers(i, stages, k))
        ok = 0.0 if top is None else float(data.score[i, replay.returned(stages, k, mask)])
        states.append((top, p, mask, ok, spent))
    return _Trace(later, states)


def _stop(gate: StagedGate, cat: str, trace: _Trace, lam: float, start: int) -> int:
    """The stage at which ``gate`` stops, deciding from stage ``start`` on."""
    states = trace.states
    for k in range(start, len(states) - 1):
        top, p, mask = states[k][:3]
        if top is not None and not gate.go_on(cat, k, mask, p, trace.later[k + 1 :], lam)[0]:
            return k
    return len(states) - 1


def replay_rows(
    gate: StagedGate,
    replay: Replay,
    stages: list[list[int]],
    rows: np.ndarray,
    lams: Sequence[float],
) -> tuple[np.ndarray, np.ndarray]:
    """(score, cost) of every row (n_rows, len(lams)) under the gate at each ``lam``."""
    plans = [stages] if gate.direct is None else [stages, direct_stages(stages) or stages]
    scores = np.zeros((len(rows), len(lams)))
    costs = np.zeros((len(rows), len(lams)))
    for r, i in enumerate(rows):
        i = int(i)
        cat = replay.cats[i]
        traces = [_trace(g, replay, st, i) for g, st in zip(gate.plans, plans, strict=True)]
        top, p, mask = traces[0].states[0][:3]
        for c, lam in enumerate(lams):
            pick: int | None = 0  # no usable first answer: escalate along every stage
            if top is not None:
                pick, _ = gate.first_step(cat, mask, p, [t.later[1:] for t in traces], lam)
            trace = traces[0 if pick is None else pick]
            stop = 0 if pick is None else _stop(gate.plans[pick], cat, trace, lam, 1)
            scores[r, c] = trace.states[stop][3]
            costs[r, c] = trace.states[stop][4]
    return scores, costs


def share_se(scores: np.ndarray, best: np.ndarray) -> list[float]:
    """Standard error of each column's share of the best model's quality (paired per prompt):
    scores (n, K) of K settings, ``best`` (n,) the best model's."""
    bq = max(float(best.mean()), 1e-9)
    d = (scores - best[:, None]) / bq
    return [float(x) for x in d.std(axis=0) / np.sqrt(max(len(best), 1))]


def verifiable_share(replay: Replay, stages: list[list[int]]) -> float:
    """Share of prompts on which the first stage gives at least one comparable answer: below
    one half the cascade cannot verify on this traffic."""
    n = len(replay.data)
    if n == 0:
        return 0.0
    seen = sum(any(a is not None for a in replay.answers(i, stages, 0)) for i in range(n))
    return seen / n


def train_staged(replay: Replay, stages: list[list[int]], fid: np.ndarray, best: int) -> StagedGate:
    """The gate on every row, with its knob calibrated on held-back folds."""
    data = replay.data
    n = len(data)
    lams = [10.0**x for x in LAM_GRID]
    scores = np.zeros((n, len(lams)))
    costs = np.zeros((n, len(lams)))
    empty = Calibration([0.0], [1.0])
    for f in np.unique(fid):
        tr = np.where(fid != f)[0]
        te = np.where(fid == f)[0]
        gate = build_plans(replay, stages, tr, empty)
        scores[te], costs[te] = replay_rows(gate, replay, stages, te, lams)
    best_q = float(data.score[:, best].mean())
    best_c = float(data.cost[:, best].sum())
    cost_share = [float(x) for x in costs.sum(axis=0) / best_c]
    calibration = Calibration(
        list(LAM_GRID),
        [float(x) for x in scores.mean(axis=0) / best_q],
        cost_share,
        share_se(scores, data.score[:, best]),
    )
    gate = build_plans(replay, stages, np.arange(n), calibration)
    gate.task_calibration = Calibration(
        list(LAM_GRID), task_shares(data, scores, best), cost_share, calibration.se
    )
    return gate


def task_shares(data: RoutingData, scores: np.ndarray, best: int) -> list[float]:
    """Each column's share of the best model's quality per labelled category of at least
    ``MIN_CATEGORY`` prompts (capped at ``safety.MAX_TASK_SHARE``), averaged with each
    category counting once (the rule of ``calibrate.category_singles``); the pooled share
    when no category qualifies."""
    cats = np.array(data.categories)
    per = []
    for c in np.unique(cats) if len(set(data.categories)) > 1 else []:
        rows = cats == c
        bq = float(data.score[rows, best].mean())
        if rows.sum() >= MIN_CATEGORY and bq > 0:
            per.append(np.minimum(scores[rows].mean(axis=0) / bq, MAX_TASK_SHARE))
    if not per:
        per = [scores.mean(axis=0) / max(float(data.score[:, best].mean()), 1e-9)]
    return [float(x) for x in np.mean(per, axis=0)]
