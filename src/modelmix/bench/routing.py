"""The routing benchmark: replay labelled prompts through routers, honestly.

Routers are trained on one part of the data and evaluated on prompts they did not train on
(k-fold, or ``train`` data given separately). The strategies evaluated are the same ``plan``
generators the gateway runs: each ``Attempt`` is answered by a simulated call that reveals only
that model's answer (as the JSON ``{"answer": ...}`` content the prompts ask for) and token
counts for that prompt, and charges its cost.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from modelmix.bench import assess, metrics
from modelmix.bench.blind_rows import BLIND, blind_offers, blind_runs
from modelmix.bench.embed_routers import embed_prompts, embedding_routers
from modelmix.routing.cascade import CascadeStrategy, StagedCascadeStrategy
from modelmix.routing.learned.artifact import RouterArtifact
from modelmix.routing.learned.calibrate import fold_ids, train_artifact
from modelmix.routing.learned.data import RoutingData
from modelmix.routing.learned.features import Features, featurize
from modelmix.routing.learned.safety import MIN_VERIFIABLE
from modelmix.routing.learned.strategy import LearnedStrategy
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Outcome, Strategy
from modelmix.tokens import count_tokens
from modelmix.types import ChatRequest, ChatResponse, Usage

LEARNED_TARGETS = (0.85, 0.9, 0.95, 0.98, 1.0)
CASCADE_TARGETS = (0.9, 0.95, 0.98, 0.99, 1.0)
CURVE_WTP = tuple(float(x) for x in np.linspace(-4.0, 0.5, 10))
#: The staged cascade's lam sweep: steps of 1/8 decade, and of 1/64 decade near the top, where
#: quality meets the best model's (the cost at a quality interpolates between swept points).
CURVE_LAM = tuple(
    sorted(
        {round(float(x), 5) for x in np.linspace(-3.0, 0.5, 29)}
        | {round(float(x), 5) for x in np.arange(-1.75, -0.999, 0.03125)}
    )
)


@dataclass(slots=True)
class Run:
    """One router at one knob setting, over every evaluated prompt."""

    router: str
    knob: str
    family: str  # single | baseline | learned | cascade | oracle
    quality: float = 0.0
    cost: float = 0.0
    calls: int = 0
    escalated: int = 0
    prompts: int = 0
    target: float | None = None
    strong_calls: int = 0
    decisions: list[dict[str, Any]] = field(default_factory=list)
    #: Per evaluated prompt: its row in the data, score and cost (for bootstrap intervals).
    rows: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)
    #: Rows whose decision found the prompt unlike the training prompts.
    novel_rows: list[int] = field(default_factory=list)
    #: Rows the route could not place in a training category (``shift``: a quality_target
    #: route raises its willingness to pay there).
    unplaced_rows: list[int] = field(default_factory=list)

    def add(
        self, score: float, cost: float, called: list[str], escalated: bool, row: int = -1
    ) -> None:
        self.quality += score
        self.cost += cost
        self.calls += len(called)
        self.escalated += int(escalated)
        self.prompts += 1
        self.rows.append(row)
        self.scores.append(score)
        self.costs.append(cost)

    @property
    def mean_quality(self) -> float:
        return self.quality / max(self.prompts, 1)


def simulate(
    strategy: Strategy, data: RoutingData, i: int, cost: np.ndarray, hide_answers: bool = False
) -> tuple[float, float, list[str], str, dict[str, Any]]:
    """Run ``strategy.plan`` on prompt ``i``: (score, cost, models called, returned, decision).
    ``hide_answers``: every response's content is empty (only its token counts are real)."""
    request = ChatRequest(
        model=strategy.name, messages=[{"role": "user", "content": data.prompts[i]}]
    )
    decision: dict[str, Any] = {}
    plan = strategy.plan(request, needs_of(request), decision)
    called: list[str] = []
    spent = 0.0
    attempt = next(plan)
    while True:
        if attempt.request is not None:
            raise ValueError("the offline benchmark cannot simulate judge calls")
        j = data.models.index(attempt.model)
        called.append(attempt.model)
        spent += float(cost[i, j])
        answer = None if hide_answers else data.answers[i][j]
        content = orjson.dumps({"answer": answer}).decode() if answer is not None else ""
        response = ChatResponse(
            id=f"sim-{i}-{j}",
            model=attempt.model,
            content=content,
            usage=Usage(int(data.prompt_tokens[i, j]), int(data.completion_tokens[i, j])),
        )
        try:
            attempt = plan.send(Outcome(attempt.model, response=response))
        except StopIteration as stop:
            final = stop.value
            break
    returned = final.model if final is not None else called[-1]
    score = float(data.score[i, data.models.index(returned)])
    return score, spent, called, returned, decision


class _MemoArtifact(RouterArtifact):
    """An artifact whose prompt features are computed once per prompt text: the benchmark
    replays the same prompts through dozens of knob settings (same features every time)."""

    __slots__ = ()

    def featurize(self, text: str) -> Features:
        f = _FEATURES.get(text)
        if f is None:
            f = _FEATURES[text] = featurize(text)
        return f


_FEATURES: dict[str, Features] = {}


@contextmanager
def memoised_prompts() -> Iterator[None]:
    """While replaying: features and token counts computed once per prompt text (the
    request facts and the strategies' modules look ``count_tokens`` up by name at call time)."""
    from modelmix import request_facts
    from modelmix.routing import cascade
    from modelmix.routing.learned import strategy

    counted = functools.lru_cache(maxsize=None)(count_tokens)
    modules = (request_facts, strategy, cascade)
    names = [vars(m) for m in modules if "count_tokens" in vars(m)]
    saved = [ns["count_tokens"] for ns in names]
    for ns in names:
        ns["count_tokens"] = counted
    try:
        yield
    finally:
        for ns, original in zip(names, saved, strict=True):
            ns["count_tokens"] = original
        _FEATURES.clear()


def _learned_runs(
    artifact: RouterArtifact, models: list[str]
) -> Iterator[tuple[str, str, float | None, Strategy]]:
    for t in LEARNED_TARGETS:
        yield (
            "learned",
            f"quality_target={t}",
            t,
            LearnedStrategy("learned", models, artifact, quality_target=t),
        )
    for w in CURVE_WTP:
        yield (
            "learned",
            f"wtp=1e{w:.2f}",
            None,
            LearnedStrategy("learned", models, artifact, wtp=10.0**w),
        )
    profiles = artifact.meta.get("model_quality", {})
    if profiles:
        for t in (0.9, 0.95, 1.0):
            yield (
                "profile",
                f"quality_target={t}",
                t,
                LearnedStrategy("profile", models, artifact, quality_target=t, profiles=profiles),
            )
    verifiable = float(artifact.meta.get("staged_verifiable", 1.0)) >= MIN_VERIFIABLE
    if artifact.staged is not None:  # (not verifiable: only the targets, served without it)
        for t in CASCADE_TARGETS:
            yield (
                "cascade",
                f"quality_target={t}",
                t,
                StagedCascadeStrategy("cascade", artifact, quality_target=t),
            )
        for x in CURVE_LAM if verifiable else ():
            yield (
                "cascade",
                f"lam=1e{x:+.2f}",
                None,
                StagedCascadeStrategy("cascade", artifact, lam=10.0**x),
            )
    yield from blind_runs(artifact, LEARNED_TARGETS)
    gate = artifact.gate
    if gate is not None and verifiable:
        yield (
            "cascade-agree",
            "need=2",
            None,
            CascadeStrategy("cascade-agree", gate.voters, gate.strong, need=2),
        )
        yield (
            "voters-only",
            "need=2",
            None,
            CascadeStrategy("voters-only", gate.voters, [], need=2),
        )


@dataclass(slots=True)
class BenchResult:
    models: list[str]
    runs: list[Run]
    best_model: str
    best_quality: float
    best_cost: float
    prompts: int
    folds: int | None
    #: How the prompts were split into train and test ("kfold", "task", "given").
    split: str = "kfold"
    #: Per-prompt score of the best single model (the denominator of every share).
    best_scores: np.ndarray | None = None
    #: Each prompt's category (for the share of each found unlike the training prompts).
    categories: list[str] = field(default_factory=list)
    #: Per quality_target: [folds whose do-no-harm choice serves the answer-blind cascade,
    #: folds] (``blind_offers``).
    blind_offered: dict[str, list[int]] = field(default_factory=dict)
    #: Leave-task-out: each prompt's held-out group (the tasks trained without), named.
    held_out: list[str] = field(default_factory=list)

    def by_router(self, router: str) -> list[Run]:
        return [r for r in self.runs if r.router == router]


def run_benchmark(
    data: RoutingData,
    folds: int = 5,
    train: RoutingData | None = None,
    seed: int = 0,
    keep_decisions: bool = False,
    progress: Callable[[str], None] | None = None,
    split: str = "kfold",
) -> BenchResult:
    """Replay every router on prompts it did not train on. ``split``: "kfold" (random folds)
    or "task" (whole categories held out: leave-one-task-out, or groups of tasks when there
    are more tasks than ``folds``); ignored when ``train`` is given."""
    n, _m = data.score.shape
    cost = data.cost
    runs: dict[tuple[str, str], Run] = {}
    held_out: list[str] = []

    def run_of(router: str, knob: str, family: str, target: float | None = None) -> Run:
        key = (router, knob)
        if key not in runs:
            runs[key] = Run(router, knob, family, target=target)
        return runs[key]

    # Single models, random, oracle: no training needed.
    for j, model in enumerate(data.models):
        r = run_of(model, "always", "single")
        r.quality, r.cost, r.calls, r.prompts = (
            float(data.score[:, j].sum()),
            float(cost[:, j].sum()),
            n,
            n,
        )
    rand = run_of("random", "uniform", "baseline")
    rand.quality, rand.cost = float(data.score.mean(axis=1).sum()), float(cost.mean(axis=1).sum())
    rand.calls = rand.prompts = n
    oracle = run_of("oracle", "per-prompt", "oracle")
    top = data.score.max(axis=1, keepdims=True)
    oracle_pick = np.argmin(np.where(data.score >= top, cost, np.inf), axis=1)
    oracle.quality = float(data.score[np.arange(n), oracle_pick].sum())
    oracle.cost = float(cost[np.arange(n), oracle_pick].sum())
    oracle.calls = oracle.prompts = n

    if train is not None:
        splits: list[tuple[np.ndarray | None, np.ndarray]] = [(None, np.arange(n))]
    else:
        fid = task_fold_ids(data.categories, folds, seed) if split == "task" else None
        if fid is None:
            fid = fold_ids(n, folds, seed)
        folds = int(fid.max()) + 1
        splits = [(np.where(fid != f)[0], np.where(fid == f)[0]) for f in range(folds)]
        if split == "task":
            held_out = _held_out_names(data.categories, fid)
    emb = embed_prompts(data) if train is None else None
    offered: dict[str, list[int]] = {}
    with memoised_prompts():
        for k, (tr, te) in enumerate(splits):
            train_data = train if tr is None else data.subset(tr)
            assert train_data is not None
            if progress:
                progress(f"fold {k + 1}/{len(splits)}: training on {len(train_data)} prompts")
            artifact = train_artifact(train_data, seed=seed)
            artifact.__class__ = _MemoArtifact
            _category_prior(train_data, data, te, cost, run_of)
            blind_offers(artifact, LEARNED_TARGETS, offered)
            if emb is not None and tr is not None:
                embedding_routers(emb, tr, data, te, artifact, run_of)
            _replay(artifact, data, te, run_of, keep_decisions)
    best = int(np.argmax(data.score.mean(axis=0)))
    return BenchResult(
        models=list(data.models),
        runs=list(runs.values()),
        best_model=data.models[best],
        best_quality=float(data.score[:, best].mean()),
        best_cost=float(cost[:, best].sum()),
        prompts=n,
        folds=None if train is not None else folds,
        split="given" if train is not None else split,
        best_scores=data.score[:, best].copy(),
        categories=list(data.categories),
        blind_offered=offered,
        held_out=held_out,
    )


def _held_out_names(categories: list[str], fid: np.ndarray) -> list[str]:
    """Per prompt, the name of its leave-task-out fold: its category when the fold holds one,
    else the fold's number and how many categories it holds."""
    names = []
    for f in range(int(fid.max()) + 1):
        cats = sorted({categories[i] for i in np.where(fid == f)[0]})
        names.append(cats[0] if len(cats) == 1 else f"fold {f + 1} ({len(cats)} categories)")
    return [names[int(f)] for f in fid]


def _replay(
    artifact: RouterArtifact,
    data: RoutingData,
    test: np.ndarray,
    run_of: Callable[..., Run],
    keep_decisions: bool,
) -> None:
    """Every router and knob of one trained artifact over the held-out ``test`` prompts."""
    cost = data.cost
    for router, knob, target, strategy in _learned_runs(artifact, data.models):
        family = "cascade" if "cascade" in router or router == "voters-only" else "learned"
        r = run_of(router, knob, family, target)
        for i in test:
            score, spent, called, returned, decision = simulate(
                strategy, data, int(i), cost, hide_answers=router == BLIND
            )
            r.add(score, spent, called, bool(decision.get("escalated", False)), int(i))
            if "out_of_distribution" in decision:
                r.novel_rows.append(int(i))
            if "unplaced" in decision:
                r.unplaced_rows.append(int(i))
            if keep_decisions:
                r.decisions.append(
                    {
                        "id": data.ids[int(i)],
                        "router": router,
                        "knob": knob,
                        "called": called,
                        "returned": returned,
                        "score": score,
                        "cost": spent,
                    }
                )


def task_fold_ids(categories: list[str], folds: int, seed: int) -> np.ndarray | None:
    """Fold per prompt with whole categories held out: one fold per category when there are
    at most ``folds`` of them, else the categories shuffled into ``folds`` groups. None when
    there is only one category (nothing to hold out)."""
    cats = sorted(set(categories))
    if len(cats) < 2:
        return None
    order = list(range(len(cats)))
    np.random.default_rng(seed).shuffle(order)
    group = {cats[k]: (pos % folds if len(cats) > folds else k) for pos, k in enumerate(order)}
    return np.array([group[c] for c in categories])


def subsample(data: RoutingData, max_prompts: int, seed: int) -> RoutingData:
    """At most ``max_prompts`` prompts, drawn at random (kept in file order)."""
    if len(data) <= max_prompts:
        return data
    rows = np.sort(np.random.default_rng(seed).choice(len(data), max_prompts, replace=False))
    return data.subset(rows)


PRIOR_TARGETS = tuple(float(x) for x in np.linspace(0.5, 1.0, 26))


def _category_prior(
    train: RoutingData,
    data: RoutingData,
    test: np.ndarray,
    cost: np.ndarray,
    run_of: Callable[..., Run],
) -> None:
    """Per-category prior: per category (known from the data), the cheapest model whose
    training mean score reaches ``t`` of that category's best training mean."""
    tcost = train.cost
    cats = sorted(set(train.categories))
    mean_q: dict[str, np.ndarray] = {}
    mean_c: dict[str, np.ndarray] = {}
    for c in cats:
        rows = np.array([i for i, x in enumerate(train.categories) if x == c])
        mean_q[c] = train.score[rows].mean(axis=0)
        mean_c[c] = tcost[rows].mean(axis=0)
    overall_q = train.score.mean(axis=0)
    overall_c = tcost.mean(axis=0)
    for t in PRIOR_TARGETS:
        r = run_of("category-prior", f"t={t:.2f}", "baseline", t)
        for i in test:
            c = data.categories[int(i)]
            q, cc = mean_q.get(c, overall_q), mean_c.get(c, overall_c)
            ok = q >= t * q.max()
            j = int(np.argmin(np.where(ok, cc, np.inf)))
            r.add(
                float(data.score[int(i), j]),
                float(cost[int(i), j]),
                [data.models[j]],
                False,
                int(i),
            )


# -- summaries -----------------------------------------------------------------------------


def curve(result: BenchResult, router: str) -> list[metrics.Point]:
    return [(r.cost, r.mean_quality) for r in result.by_router(router)]


def summary(result: BenchResult) -> dict[str, Any]:
    """Every run's metrics plus, per router family, AIQ and savings (the JSON of ``--json``)."""
    bq, bc = result.best_quality, result.best_cost
    singles = [r for r in result.runs if r.family == "single"]
    cheapest = min(singles, key=lambda r: r.cost)
    floor = (cheapest.cost, cheapest.mean_quality)
    lo, hi = cheapest.cost, bc
    named = [(r.router, r.cost, r.mean_quality) for r in singles]
    rows = []
    for r in result.runs:
        hull_q = assess.hull_quality(named, r.cost)
        rows.append(
            {
                "router": r.router,
                "knob": r.knob,
                "family": r.family,
                "quality": r.mean_quality,
                "cost": r.cost,
                "cost_share": r.cost / bc,
                "quality_share": r.mean_quality / bq,
                "target": r.target,
                "escalation_rate": (r.escalated / r.prompts) if r.family == "cascade" else None,
                "calls_per_prompt": r.calls / max(r.prompts, 1),
                "hull_quality": hull_q,
                "vs_hull": None if hull_q is None else r.mean_quality - hull_q,
                "dominated_by": (
                    None
                    if r.family == "single"
                    else assess.dominating_single(r.cost, r.mean_quality, named)
                ),
                "interval": _interval(result, r),
                "by_task": _by_task(result, r),
                "unlike_training": (
                    len(r.novel_rows) / r.prompts if r.target is not None and r.prompts else None
                ),
            }
        )
    routers: dict[str, list[metrics.Point]] = {
        "single-model hull": [(r.cost, r.mean_quality) for r in singles]
    }
    for name in dict.fromkeys(r.router for r in result.runs if r.family != "single"):
        routers[name] = curve(result, name)
    curves = {}
    for name, pts in routers.items():
        s1 = metrics.saving_at(pts, bq, bc)
        s95 = metrics.saving_at(pts, 0.95 * bq, bc)
        curves[name] = {
            "aiq": metrics.aiq(pts, lo, hi, floor),
            "saving_at_best": s1,
            "saving_at_95": s95,
            "cost_share_at_best": None if s1 is None else 1 - s1,
            "cost_share_at_95": None if s95 is None else 1 - s95,
            "frontier": metrics.frontier([*pts, floor]),
        }
    out: dict[str, Any] = {
        "prompts": result.prompts,
        "folds": result.folds,
        "split": result.split,
        "do_no_harm": assess.do_no_harm(rows, bc),
        "best_model": result.best_model,
        "best_quality": bq,
        "best_cost": bc,
        "runs": rows,
        "curves": curves,
    }
    if len(result.models) == 2:
        out["two_model"] = _two_model(result)
    out["unlike_training"] = _unlike_training(result)
    if result.blind_offered:
        out["blind_offered"] = result.blind_offered
    unplaced = _unlike_training(result, "unplaced_rows")
    if unplaced.get("all"):
        out["unplaced"] = unplaced
    return out


def _unlike_training(result: BenchResult, kind: str = "novel_rows") -> dict[str, float]:
    """Per category, the share of its prompts the learned router found unlike its training
    prompts (``kind="unplaced_rows"``: could not place in a training category; the checks
    depend on the prompt, not the target: one target's run)."""
    runs = [r for r in result.by_router("learned") if r.target is not None and r.prompts]
    if not runs or not result.categories:
        return {}
    flagged = set(getattr(runs[0], kind))
    out: dict[str, float] = {}
    for c in sorted(set(result.categories)):
        rows = [i for i in runs[0].rows if result.categories[i] == c]
        out[c] = sum(i in flagged for i in rows) / max(len(rows), 1)
    out["all"] = len(flagged) / runs[0].prompts
    return out


def _interval(result: BenchResult, r: Run) -> list[float] | None:
    """95% bootstrap interval of the realised share of best quality, for a run with a target."""
    if r.target is None or result.best_scores is None or not r.rows:
        return None
    return list(assess.share_interval(r.scores, r.rows, result.best_scores))


def _by_task(result: BenchResult, r: Run) -> dict[str, float] | None:
    """Leave-task-out, for a run with a target: the realised share of best quality on each
    held-out task (the promise as one user with that task meets it; the pooled share averages
    the tasks)."""
    if r.target is None or not result.held_out or result.best_scores is None or not r.rows:
        return None
    got: dict[str, list[float]] = {}
    for row, score in zip(r.rows, r.scores, strict=True):
        acc = got.setdefault(result.held_out[row], [0.0, 0.0])
        acc[0] += score
        acc[1] += float(result.best_scores[row])
    return {task: q / max(b, 1e-12) for task, (q, b) in sorted(got.items())}


def _two_model(result: BenchResult) -> dict[str, Any]:
    singles = {r.router: r for r in result.runs if r.family == "single"}
    weak_r, strong_r = sorted(singles.values(), key=lambda r: r.mean_quality)
    weak, strong = weak_r.mean_quality, strong_r.mean_quality
    out: dict[str, Any] = {"weak": weak_r.router, "strong": strong_r.router}
    for name in dict.fromkeys(r.router for r in result.runs if r.family not in ("single",)):
        # strong-call share ~ cost share between the two models' costs
        pts = []
        for r in result.by_router(name):
            span = strong_r.cost - weak_r.cost
            share = (r.cost - weak_r.cost) / span if span else 0.0
            pts.append((min(max(share, 0.0), 1.0), r.mean_quality))
        out[name] = {
            "apgr": metrics.apgr(pts, weak, strong),
            "cpt50": metrics.cpt(pts, weak, strong, 0.5),
            "cpt80": metrics.cpt(pts, weak, strong, 0.8),
        }
    return out
