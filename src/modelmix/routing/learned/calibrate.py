"""Training a router artifact from labelled data, with held-back calibration.

Everything a knob maps to is measured on prompts the model did not train on: the training rows
are split into folds, each fold is predicted by heads fitted on the others (out-of-fold), and
the calibration tables (willingness to pay -> realised quality share; cascade gate threshold ->
realised quality share) are built from those out-of-fold predictions. The shipped heads are then
refitted on all rows.
"""

from __future__ import annotations

import itertools

import numpy as np

from modelmix.routing.learned import familiar, profile_shift, shift
from modelmix.routing.learned.artifact import Calibration, CascadeGate, RouterArtifact
from modelmix.routing.learned.data import RoutingData
from modelmix.routing.learned.features import feature_matrix
from modelmix.routing.learned.model import (
    LinearHeads,
    RidgeSolver,
    dense_stats,
    fit_logistic,
    fit_platt,
    sigmoid,
    standardise,
)
from modelmix.routing.learned.novelty import fit_centroids, oof_threshold
from modelmix.routing.learned.policy import KNOB_GRID, agreed, gate_features, logit, pick_many
from modelmix.routing.learned.train_blind import BlindInputs, train_blind
from modelmix.routing.learned.train_staged import (
    MIN_CATEGORY,
    Replay,
    default_stages,
    share_se,
    train_staged,
    verifiable_share,
)
from modelmix.tokens import count_tokens

GATE_GRID = tuple(float(x) for x in np.linspace(0.0, 1.0, 51))
#: Per-prompt thresholds of the profile router (share of the best candidate's P(good)).
PROFILE_GRID = tuple(round(float(x), 3) for x in np.linspace(0.5, 1.0, 101))


def profile_choices(p: np.ndarray, cost: np.ndarray, threshold: float) -> np.ndarray:
    """Per prompt (row), the cheapest model whose P(good) reaches ``threshold`` times the
    best one's: the profile router's rule (``LearnedStrategy.choose`` without a wtp)."""
    ok = p >= threshold * p.max(axis=1, keepdims=True)
    out: np.ndarray = np.where(ok, cost, np.inf).argmin(axis=1)
    return out


def fold_ids(n: int, folds: int, seed: int) -> np.ndarray:
    ids = np.arange(n) % folds
    np.random.default_rng(seed).shuffle(ids)
    return ids


def _exit_states(
    answers: list[list[str | None]], voters: list[int], need: int, p: np.ndarray
) -> tuple[np.ndarray, list[int], list[int]]:
    """Per prompt: gate features at the voters' exit, the exit step, the answering voter."""
    feats: list[list[float]] = []
    steps: list[int] = []
    picks: list[int] = []
    for i, row in enumerate(answers):
        called: list[str | None] = []
        for k, j in enumerate(voters):
            called.append(row[j])
            if k == len(voters) - 1 or agreed(called, need):
                break
        f, _, who = gate_features(called, [float(p[i, j]) for j in voters[: len(called)]])
        feats.append(f)
        steps.append(len(called))
        picks.append(voters[who])
    return np.asarray(feats), steps, picks


def choose_voters(data: RoutingData, cost: np.ndarray, best: int, size: int = 3) -> list[int]:
    """The cheap voters: among models costing at most 15% of the best one, the set of ``size``
    whose agreement cascade (no escalation) scores best, in order of cost."""
    total = cost.sum(axis=0)
    cheap = [j for j in range(len(data.models)) if j != best and total[j] <= 0.15 * total[best]]
    cheap = sorted(cheap, key=lambda j: -data.score[:, j].mean())[:7]
    if len(cheap) < size:
        return sorted(cheap, key=lambda j: total[j])
    acc = data.score.mean(axis=0)
    best_set: list[int] = []
    best_val = -np.inf
    flat = np.full((len(data), len(data.models)), 0.5)
    for combo in itertools.combinations(cheap, size):
        order = sorted(combo, key=lambda j: total[j])
        _, steps, picks = _exit_states(data.answers, order, 2, flat + acc * 1e-3)
        quality = float(np.mean([data.score[i, j] for i, j in enumerate(picks)]))
        spent = sum(cost[i, order[:s]].sum() for i, s in enumerate(steps)) / total[best]
        value = quality - 0.25 * spent
        if value > best_val:
            best_val, best_set = value, order
    return best_set


#: A category needs this many prompts for its single-model figures to count.
def category_singles(data: RoutingData, best: int) -> dict[str, dict[str, float]]:
    """Per category with at least ``MIN_CATEGORY`` prompts (when there are several), each
    model's share of the best model's quality there (``safety.task_singles``)."""
    cats = np.array(data.categories)
    out: dict[str, dict[str, float]] = {}
    names = sorted(set(data.categories))
    for c in names if len(names) > 1 else []:
        S = data.score[cats == c]
        if len(S) < MIN_CATEGORY or S[:, best].mean() <= 0:
            continue
        out[c] = {x: float(S[:, j].mean() / S[:, best].mean()) for j, x in enumerate(data.models)}
    return out


#: Pseudo-prompts at the overall mean that shrink each category's mean score (its prior).
PRIOR_SHRINK = 20.0


def category_prior(S: np.ndarray, Y_cat: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per category (row) and model, the logit of the mean score of ``rows`` in it, shrunk
    toward the overall mean by ``PRIOR_SHRINK`` pseudo-prompts."""
    overall = S[rows].mean(axis=0)
    counts = Y_cat[rows].sum(axis=0)[:, None]
    mean = (Y_cat[rows].T @ S[rows] + PRIOR_SHRINK * overall) / (counts + PRIOR_SHRINK)
    q = np.clip(mean, 0.01, 0.99)
    out: np.ndarray = np.log(q / (1 - q))
    return out


def prior_logits(
    S: np.ndarray, Y_cat: np.ndarray, cat_oof: np.ndarray, fid: np.ndarray
) -> np.ndarray:
    """Per prompt and model, the prior (logit of the mean score on the other folds) of the
    prompt's predicted category (the argmax of its out-of-fold category head)."""
    cat = cat_oof.argmax(axis=1)
    L = np.zeros(S.shape)
    for f in np.unique(fid):
        te = np.where(fid == f)[0]
        L[te] = category_prior(S, Y_cat, np.where(fid != f)[0])[cat[te]]
    return L


def calibrate_quality(
    z_oof: np.ndarray, cat_oof: np.ndarray, S: np.ndarray, Y_cat: np.ndarray, fid: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Per model, P(good) from the head's out-of-fold score and, when the data has several
    categories, the prior of the predicted category (its mean score on the other folds):
    ``sigmoid(a·z + c + w·prior[category])``. Returns the (a, c) pairs, the (category, model)
    shifts ``w·prior`` (None: one category), the out-of-fold P(good) and ``w`` per model."""
    n, m = S.shape
    if Y_cat.shape[1] < 2:
        platt = np.array([fit_platt(z_oof[:, j], S[:, j]) for j in range(m)], dtype=np.float32)
        return platt, None, sigmoid(platt[:, 0] * z_oof + platt[:, 1]), np.zeros(m)
    L = prior_logits(S, Y_cat, cat_oof, fid)
    w = np.array([fit_logistic(np.c_[z_oof[:, j], L[:, j]], S[:, j]) for j in range(m)])
    platt = w[:, [0, 2]].astype(np.float32)
    shift = (category_prior(S, Y_cat, np.arange(n)) * w[:, 1]).astype(np.float32)
    p_oof = sigmoid(platt[:, 0] * z_oof + platt[:, 1] + w[:, 1] * L)
    return platt, shift, p_oof, w[:, 1]


def out_of_fold(solver: RidgeSolver, targets: np.ndarray, fid: np.ndarray) -> np.ndarray:
    """Every target column predicted for each fold by heads fitted on the other folds."""
    out = np.zeros(targets.shape)
    for f in np.unique(fid):
        tr = np.where(fid != f)[0]
        te = np.where(fid == f)[0]
        out[te] = solver.predict(tr, solver.fit(tr, targets), te)
    return out


def grouped_out_of_fold(
    solver: RidgeSolver, targets: np.ndarray, data: RoutingData, seed: int, folds: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """Fold ids of whole categories (``shift.group_folds``) and every target column predicted
    out of fold with them; None with too few categories."""
    gid = shift.group_folds(data.categories, folds, seed)
    if gid is None:
        return None
    return gid, out_of_fold(solver, targets, gid)


def shift_table(
    targets: np.ndarray,
    data: RoutingData,
    held: shift.Held,
    fitted: tuple[np.ndarray, np.ndarray, np.ndarray],
    grouped: tuple[np.ndarray, np.ndarray],
) -> shift.ShiftCalibration:
    """The knob table for targets that hold on unseen categories (``shift``): the heads
    cross-fitted again with folds of whole categories (``grouped``: fold ids, predictions),
    P(good) from the same calibration (``fitted``: Platt pairs, prior weights, token
    variance) as the shipped heads, and the threshold and boost under which it agrees with
    the random folds' table (``held``)."""
    gid, pred = grouped
    platt, prior_w, token_var = fitted
    S, m = data.score, len(data.models)
    Y_cat = targets[:, 2 * m + 1 :]
    cat_g = pred[:, 2 * m + 1 :]
    L = prior_logits(S, Y_cat, cat_g, gid)
    p_g = sigmoid(platt[:, 0] * pred[:, :m] + platt[:, 1] + prior_w * L)
    pin = np.array([data.prices[x][0] for x in data.models])
    pout = np.array([data.prices[x][1] for x in data.models])
    seen = np.array([[float(count_tokens(t))] for t in data.prompts])
    cost_g = seen * pin + np.expm1(pred[:, m : 2 * m] + token_var / 2) * pout
    grouped_held = shift.Held(p_g, cost_g, cat_g.max(axis=1))
    return shift.fit(S, data.cost, held, grouped_held, np.asarray(KNOB_GRID))


def profile_inputs(
    data: RoutingData, pred: np.ndarray, token_var: np.ndarray, seen: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """P(good) and cost per prompt and model as the profile router serves them, from
    out-of-fold predictions ``pred`` (``[quality | tokens | easiness | categories]``): each
    model's mean score as its profile, P(good) = sigmoid(logit(profile) + easiness - mean
    easiness), cost from the typical predicted completion length."""
    S, m = data.score, len(data.models)
    easy = np.clip(S.mean(axis=1), 0.02, 0.98)
    mean_easiness = float(np.log(easy / (1 - easy)).mean())
    profile_logit = np.array([logit(float(q)) for q in S.mean(axis=0)])
    p = sigmoid(profile_logit[None, :] + (pred[:, 2 * m] - mean_easiness)[:, None])
    t = pred[:, m : 2 * m]
    typical = np.maximum(np.expm1(t.mean(axis=1) + float(token_var.mean()) / 2), 1.0)
    pin = np.array([data.prices[x][0] for x in data.models])
    pout = np.array([data.prices[x][1] for x in data.models])
    return p, seen * pin + typical[:, None] * pout


def profile_table(data: RoutingData, p: np.ndarray, cost: np.ndarray) -> Calibration:
    """The profile router's table: threshold -> share of the best model's quality kept (and
    cost share) on held-back prompts."""
    S, rows = data.score, np.arange(len(data))
    best = int(np.argmax(S.mean(axis=0)))
    best_q, best_c = S[:, best].mean(), data.cost[:, best].sum()
    shares: list[float] = []
    costs: list[float] = []
    for threshold in PROFILE_GRID:
        ch = profile_choices(p, cost, threshold)
        shares.append(float(S[rows, ch].mean() / best_q))
        costs.append(float(data.cost[rows, ch].sum() / best_c))
    return Calibration(list(PROFILE_GRID), shares, costs)


def train_artifact(
    data: RoutingData,
    folds: int = 5,
    seed: int = 0,
    l2: float = 1.0,
    voters: list[str] | None = None,
    need: int = 2,
    stages: list[list[str]] | None = None,
) -> RouterArtifact:
    n, m = data.score.shape
    if n < 2 * folds:
        raise ValueError(f"need at least {2 * folds} labelled prompts, got {n}")
    X = feature_matrix(data.prompts)
    mu, sd = dense_stats(X)
    Z = standardise(X, mu, sd)
    solver = RidgeSolver(Z, l2)
    S = data.score
    T = np.log1p(data.completion_tokens)
    easy = np.clip(S.mean(axis=1, keepdims=True), 0.02, 0.98)
    E = np.log(easy / (1 - easy))
    cost = data.cost
    pin = np.array([data.prices[x][0] for x in data.models])
    pout = np.array([data.prices[x][1] for x in data.models])
    best = int(np.argmax(S.mean(axis=0)))
    categories = sorted(set(data.categories))
    Y_cat = np.array([[float(c == x) for x in categories] for c in data.categories])

    # -- out-of-fold predictions ----------------------------------------------------------
    fid = fold_ids(n, folds, seed)
    everything = np.hstack([S, T, E, Y_cat])
    pred = out_of_fold(solver, everything, fid)
    z_oof, t_oof, cat_oof = pred[:, :m], pred[:, m : 2 * m], pred[:, 2 * m + 1 :]
    platt, prior_shift, p_oof, prior_w = calibrate_quality(z_oof, cat_oof, S, Y_cat, fid)
    token_var = np.var(T - t_oof, axis=0).astype(np.float32)
    # The prompt's tokens as the router counts them when it decides (the text it sees): a
    # data file may count more (e.g. a few-shot prefix the text does not hold), and a
    # calibration measured with other counts than the served ones would not hold.
    seen = np.array([[float(count_tokens(t))] for t in data.prompts])
    cost_oof = seen * pin + np.expm1(t_oof + token_var / 2) * pout

    # -- calibration of the willingness-to-pay knob ------------------------------------------
    best_q = S[:, best].mean()
    best_c = cost[:, best].sum()
    shares: list[float] = []
    cost_shares: list[float] = []
    rows = np.arange(n)
    knob_scores = np.zeros((n, len(KNOB_GRID)))
    for k, knob in enumerate(KNOB_GRID):
        ch = pick_many(p_oof, cost_oof, knob)
        knob_scores[:, k] = S[rows, ch]
        shares.append(float(S[rows, ch].mean() / best_q))
        cost_shares.append(float(cost[rows, ch].sum() / best_c))
    calibration = Calibration(
        list(KNOB_GRID), shares, cost_shares, share_se(knob_scores, S[:, best])
    )

    # -- the same table with whole categories held out, for targets on unseen tasks --------
    held = shift.Held(p_oof, cost_oof, cat_oof.max(axis=1))
    grouped = grouped_out_of_fold(solver, everything, data, seed, folds)
    unseen = (
        shift_table(everything, data, held, (platt, prior_w, token_var), grouped)
        if grouped is not None
        else None
    )

    # -- calibration of the profile router's threshold --------------------------------------
    # As served for a portfolio given by quality profiles (here: each model's mean score):
    # the table maps a quality_target to the per-prompt threshold that kept that share of the
    # best model's quality on held-back prompts; with whole categories held out too, the mean
    # of the two tables with a raised threshold for unplaced prompts (``profile_shift``).
    p_profile, cost_profile = profile_inputs(data, pred, token_var, seen)
    profile_calibration = profile_table(data, p_profile, cost_profile)
    profile_unseen = None
    if grouped is not None:
        p_g, cost_g = profile_inputs(data, grouped[1], token_var, seen)
        profile_unseen = profile_shift.fit(
            S,
            cost,
            shift.Held(p_profile, cost_profile, cat_oof.max(axis=1)),
            shift.Held(p_g, cost_g, grouped[1][:, 2 * m + 1 :].max(axis=1)),
            np.asarray(PROFILE_GRID),
        )

    # -- the cascade gate --------------------------------------------------------------------
    voter_idx = (
        [data.models.index(v) for v in voters] if voters else choose_voters(data, cost, best)
    )
    gate = None
    if voter_idx:
        gx, steps, picks = _exit_states(data.answers, voter_idx, need, p_oof)
        gy = S[rows, picks]
        g_oof = np.zeros(n)
        for f in range(folds):
            tr = np.where(fid != f)[0]
            te = np.where(fid == f)[0]
            w = fit_logistic(gx[tr], gy[tr])
            g_oof[te] = sigmoid(gx[te] @ w[:-1] + w[-1])
        w_all = fit_logistic(gx, gy)
        voter_cost = np.array([cost[i, voter_idx[: steps[i]]].sum() for i in range(n)])
        g_share: list[float] = []
        g_cost: list[float] = []
        for tau in GATE_GRID:
            escalate = g_oof < tau
            q = np.where(escalate, S[:, best], gy)
            c = voter_cost + np.where(escalate, cost[:, best], 0.0)
            g_share.append(float(q.mean() / best_q))
            g_cost.append(float(c.sum() / best_c))
        gate = CascadeGate(
            [data.models[j] for j in voter_idx],
            [data.models[best]],
            need,
            [float(x) for x in w_all],
            Calibration(list(GATE_GRID), g_share, g_cost),
        )

    # -- the staged cascade ---------------------------------------------------------------------
    stage_idx = (
        [[data.models.index(x) for x in s] for s in stages]
        if stages
        else default_stages(data, voter_idx, best)
    )
    pred_tokens = np.maximum(np.expm1(t_oof + token_var / 2), 1.0)
    replay = Replay(data, [categories[int(k)] for k in cat_oof.argmax(axis=1)], pred_tokens, seen)
    staged = train_staged(replay, stage_idx, fid, best)
    verifiable = verifiable_share(replay, stage_idx)

    # -- the answer-blind cascade (escalation on token counts, no answer read) ---------------
    blind_in = BlindInputs(
        data, p_oof, t_oof, token_var, cost_oof, seen[:, 0], cat_oof.argmax(axis=1), len(categories)
    )
    blind = train_blind(blind_in, fid, best)

    # -- novelty: centroids of the prompts, threshold measured on held-back folds ----------
    centroids = fit_centroids(X, seed=seed)
    ood_threshold = oof_threshold(X, fid, seed=seed)
    familiarity = familiar.train(familiar.token_sets(data.prompts), data.categories, fid)

    # -- final heads on every row -------------------------------------------------------------
    fitted = solver.fit(rows, np.hstack([S, T, E, Y_cat]))
    W = solver.weights(rows, fitted).astype(np.float32)
    b = fitted[1].astype(np.float32)
    return RouterArtifact(
        models=list(data.models),
        prices=dict(data.prices),
        quality=LinearHeads(W[:, :m], b[:m], mu, sd),
        platt=platt,
        tokens=LinearHeads(W[:, m : 2 * m], b[m : 2 * m], mu, sd),
        token_var=token_var,
        difficulty=LinearHeads(W[:, 2 * m : 2 * m + 1], b[2 * m : 2 * m + 1], mu, sd),
        categories=categories,
        category=LinearHeads(W[:, 2 * m + 1 :], b[2 * m + 1 :], mu, sd),
        staged=staged,
        best_model=data.models[best],
        calibration=calibration,
        profile_calibration=profile_calibration,
        gate=gate,
        centroids=centroids,
        familiarity=familiarity,
        prior_shift=prior_shift,
        blind=blind,
        shift=unseen,
        profile_shift=profile_unseen,
        meta={
            "ood_threshold": ood_threshold,
            "prompts": n,
            "folds": folds,
            "l2": l2,
            "model_quality": {
                x: float(q) for x, q in zip(data.models, S.mean(axis=0), strict=True)
            },
            # do no harm: every single model's (share of best quality, share of best cost)
            "singles": {
                x: [float(S[:, j].mean() / best_q), float(cost[:, j].sum() / best_c)]
                for j, x in enumerate(data.models)
            },
            "staged_verifiable": verifiable,
            "category_singles": category_singles(data, best),
        },
    )
