"""Offline replay: what a candidate routing policy would have done on logged traffic.

Each logged request (``quality/traffic.py``) is planned again by the policy's strategy, the
same ``plan`` generator the gateway runs, fed only with what is known; no upstream is called.

* the model(s) it would call: every attempt of the plan; an attempt that needs an answer
  nobody logged (a cascade looking at a model that never answered this prompt) makes the
  request unreplayable for that policy (counted, never guessed);
* quality of the answer it returns: observed when that model's quality on this request is
  known (feedback, judge, shadow), else imputed with the model's prior (its mean quality over
  the logged traffic, or an eval run's matrix with ``prior_run``);
* cost: observed when that model answered this request, else its price times the request's
  prompt tokens and the model's median completion tokens in the logs.

Both policies are scored on the same requests, and the intervals (95%, paired bootstrap over
requests) cover the candidate, the live policy and their difference.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modelmix.config import RouteConfig
from modelmix.errors import GatewayError
from modelmix.evals.store import EvalStore
from modelmix.portfolio import ModelEntry
from modelmix.quality.traffic import LoggedRequest
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Outcome, Router
from modelmix.stats import Interval, paired_bootstrap
from modelmix.types import ChatRequest, ChatResponse, Usage


@dataclass(slots=True)
class Replayed:
    """One request under one policy."""

    model: str
    calls: list[str]
    quality: float
    quality_observed: bool
    cost: float
    cost_observed: bool


@dataclass(slots=True)
class PolicySummary:
    name: str
    quality: Interval
    cost: Interval
    observed_quality: float  # share of requests whose quality was observed, not imputed
    models: dict[str, int]


@dataclass(slots=True)
class Report:
    requests: int
    compared: int
    unreplayable: dict[str, int]
    no_prior: dict[str, int]
    live: PolicySummary
    candidate: PolicySummary
    quality_diff: Interval
    cost_diff: Interval
    agreement: float  # share of requests where both pick the same final model
    priors: dict[str, float] = field(default_factory=dict)

    def verdict(self) -> str:
        q, c = self.quality_diff, self.cost_diff
        if q.hi < 0:
            quality = "lower quality than live (the whole interval is below 0)"
        elif q.lo > 0:
            quality = "higher quality than live"
        else:
            quality = "no quality difference shown"
        if c.hi < 0:
            cost = "cheaper"
        elif c.lo > 0:
            cost = "more expensive"
        else:
            cost = "no cost difference shown"
        return f"candidate: {quality}; {cost}"

    def as_dict(self) -> dict[str, Any]:
        def iv(i: Interval) -> dict[str, float]:
            return {"mean": i.mean, "lo": i.lo, "hi": i.hi}

        def pol(p: PolicySummary) -> dict[str, Any]:
            return {
                "quality": iv(p.quality),
                "cost_per_request": iv(p.cost),
                "observed_quality_share": p.observed_quality,
                "models": p.models,
            }

        return {
            "requests": self.requests,
            "compared": self.compared,
            "unreplayable": self.unreplayable,
            "no_prior": self.no_prior,
            "live": pol(self.live),
            "candidate": pol(self.candidate),
            "quality_diff": iv(self.quality_diff),
            "cost_diff": iv(self.cost_diff),
            "agreement": self.agreement,
            "priors": self.priors,
            "verdict": self.verdict(),
        }


def eval_means(evals: EvalStore) -> dict[str, float]:
    """Each model's mean score over every eval run (the weakest prior: other prompts)."""
    rows = evals.conn.execute(
        "SELECT e.model, AVG(e.score) FROM eval_results e JOIN eval_runs r ON r.id = e.run_id "
        "WHERE r.kind = 'eval' GROUP BY e.model"
    ).fetchall()
    return {r[0]: float(r[1]) for r in rows}


def traffic_priors(traffic: Sequence[LoggedRequest]) -> dict[str, float]:
    """Each model's mean known quality over the logged traffic."""
    values: dict[str, list[float]] = defaultdict(list)
    for req in traffic:
        for model, q in req.quality.items():
            values[model].append(q)
    return {m: sum(v) / len(v) for m, v in values.items()}


class _Estimator:
    def __init__(
        self,
        portfolio: Mapping[str, ModelEntry],
        traffic: Sequence[LoggedRequest],
        priors: Mapping[str, float],
    ) -> None:
        self.portfolio = portfolio
        self.priors = dict(priors)
        tokens: dict[str, list[int]] = defaultdict(list)
        for req in traffic:
            for model, n in req.completion_tokens.items():
                tokens[model].append(n)
        self.median_tokens = {m: statistics.median(v) for m, v in tokens.items() if v}

    def cost(self, req: LoggedRequest, model: str) -> tuple[float, bool]:
        if model in req.cost:
            return req.cost[model], True
        entry = self.portfolio.get(model)
        price = entry.deployments[0].price if entry and entry.deployments else None
        if price is None:
            return 0.0, False
        completion = self.median_tokens.get(model, req.completion_tokens.get(req.served, 0))
        usage = Usage(prompt_tokens=req.prompt_tokens, completion_tokens=int(completion))
        return float(price.cost(usage)), False

    def quality(self, req: LoggedRequest, model: str) -> tuple[float, bool] | None:
        if model in req.quality:
            return req.quality[model], True
        if model in self.priors:
            return self.priors[model], False
        return None


def replay_request(router: Router, req: LoggedRequest, estimator: _Estimator) -> Replayed | str:
    """The policy's outcome on ``req``, or why it cannot be replayed."""
    model_name = req.route or req.requested_model
    try:
        strategy, _ = router.resolve(model_name)
    except GatewayError:
        return "route not in policy"
    request = ChatRequest(model=model_name, messages=req.messages)
    decision: dict[str, Any] = {}
    try:
        plan = strategy.plan(request, needs_of(request), decision)
        attempt = next(plan)
    except GatewayError:
        return "no capable model"
    calls: list[str] = []
    blind = False
    while True:
        if attempt.request is not None:
            return "needs a judge call"
        if blind:
            return "needs an answer nobody logged"
        model = attempt.model
        calls.append(model)
        answer = req.answers.get(model)
        if answer is None:
            blind = True  # fine as long as the plan does not look at it
        response = ChatResponse(id="replay", model=model, content=answer or "")
        try:
            attempt = plan.send(Outcome(model, response=response))
        except StopIteration as stop:
            final = stop.value.model if stop.value is not None else model
            break
    quality = estimator.quality(req, final)
    if quality is None:
        return f"no prior for {final}"
    cost = 0.0
    cost_observed = True
    for m in calls:
        c, observed = estimator.cost(req, m)
        cost += c
        cost_observed = cost_observed and observed
    return Replayed(final, calls, quality[0], quality[1], cost, cost_observed)


def compare(
    portfolio: Mapping[str, ModelEntry],
    live: Sequence[RouteConfig],
    candidate: Sequence[RouteConfig],
    traffic: Sequence[LoggedRequest],
    priors: Mapping[str, float] | None = None,
    fallback: Mapping[str, float] | None = None,
) -> Report:
    """Replay ``traffic`` under both policies and compare them on the requests both can
    replay. Unknown outcomes are imputed with ``priors`` (explicit), else the traffic's own
    mean per model, else ``fallback`` (e.g. eval means)."""
    merged = {**(fallback or {}), **traffic_priors(traffic), **(priors or {})}
    estimator = _Estimator(portfolio, traffic, merged)
    routers = {"live": Router(live, portfolio), "candidate": Router(candidate, portfolio)}
    unreplayable: dict[str, Counter[str]] = {k: Counter() for k in routers}
    pairs: list[tuple[Replayed, Replayed]] = []
    for req in traffic:
        got: dict[str, Replayed] = {}
        for name, router in routers.items():
            outcome = replay_request(router, req, estimator)
            if isinstance(outcome, str):
                unreplayable[name][outcome] += 1
            else:
                got[name] = outcome
        if len(got) == 2:
            pairs.append((got["live"], got["candidate"]))
    quality = paired_bootstrap([a.quality for a, _ in pairs], [b.quality for _, b in pairs])
    cost = paired_bootstrap([a.cost for a, _ in pairs], [b.cost for _, b in pairs])
    n = len(pairs)

    def summary(name: str, side: list[Replayed], q: Interval, c: Interval) -> PolicySummary:
        observed = sum(r.quality_observed for r in side) / n if n else 0.0
        return PolicySummary(name, q, c, observed, dict(Counter(r.model for r in side)))

    no_prior = {
        name: sum(v for k, v in counts.items() if k.startswith("no prior"))
        for name, counts in unreplayable.items()
    }
    return Report(
        requests=len(traffic),
        compared=n,
        unreplayable={
            f"{name}: {reason}": count
            for name, counts in unreplayable.items()
            for reason, count in counts.items()
        },
        no_prior=no_prior,
        live=summary("live", [a for a, _ in pairs], quality.a, cost.a),
        candidate=summary("candidate", [b for _, b in pairs], quality.b, cost.b),
        quality_diff=quality.diff,
        cost_diff=cost.diff,
        agreement=sum(a.model == b.model for a, b in pairs) / n if n else 0.0,
        priors=merged,
    )
