"""``AdaptiveStrategy``: latency limits, the price of a second and deployment capacity on top
of any strategy's plan (sans-I/O: reads the live estimates in ``needs.live``, does no I/O).

The inner strategy plans as before. Each model it proposes is checked against the live
estimates: a model whose every deployment is at its ``capacity``, whose predicted time to first
token or whole answer exceeds the route's ``max_ttft_ms`` / ``max_latency_ms``, or whose
recent error rate exceeds ``max_error_rate``, is passed over: the inner plan is told it could
not serve (so it proposes its next choice, its own way) and the decision's ``passed_over``
says why. When the inner plan has nothing left, the models passed over are called after all,
those with room first, then by predicted latency: a request is never refused for being slow.

``latency_weight`` (USD per second) re-ranks a strategy that prices its candidates (the learned
router's ``choose``): the predicted latency times the weight is added to each model's cost, and
the inner proposals before that choice are passed over ("latency_weight"). A model never
measured counts at the others' mean latency.

Predicted latency = time to first token + predicted completion tokens / tokens per second; the
completion length is the learned router's prediction when the inner plan made one (its decision
names each candidate's cost: tokens = (cost - prompt x input price) / output price), else the
deployment's typical length, capped by ``max_tokens``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from modelmix.adaptive.config import AdaptiveConfig
from modelmix.adaptive.live import Estimate, LiveStats
from modelmix.errors import GatewayError
from modelmix.portfolio import ModelEntry
from modelmix.routing.needs import Needs
from modelmix.routing.strategy import Attempt, Outcome, Plan, Strategy
from modelmix.types import ChatRequest

if TYPE_CHECKING:
    from modelmix.config import RouteConfig

AT_CAPACITY = "at capacity"


@dataclass(slots=True, frozen=True)
class ModelView:
    """One model as the live estimates see it: its best deployment with room."""

    room: bool
    in_flight: int
    capacity: int | None
    ttft_ms: float | None
    latency_ms: float | None
    error_rate: float
    #: Running + waiting on the servers by their queue metrics (None: no fresh report).
    queued: int | None = None
    #: The latest time to first token before fading (see ``Estimate.recent_ttft_ms``).
    recent_ttft_ms: float | None = None
    #: Calls in flight with no news for this long (see ``Estimate.stalled_ms``).
    stalled_ms: float = 0.0


def _has_room(est: Estimate, capacity: int | None) -> bool:
    return capacity is None or est.in_flight < capacity


def model_view(
    entry: ModelEntry,
    live: LiveStats,
    tokens: float | None,
    cap: int | None = None,
    now: float | None = None,
) -> ModelView:
    """The model's view: the fastest deployment with room (any, when none has room)."""
    ests = [(live.estimate(d.id, now), d.capacity) for d in entry.deployments]
    roomy = [(e, c) for e, c in ests if _has_room(e, c)]
    pool = roomy or ests
    if not pool:
        return ModelView(True, 0, None, None, None, 0.0)
    best = min(pool, key=lambda ec: ec[0].ttft_ms if ec[0].ttft_ms is not None else -1.0)[0]
    caps = [c for _, c in ests]
    capacity = None if any(c is None for c in caps) else sum(c for c in caps if c is not None)
    return ModelView(
        room=bool(roomy),
        in_flight=sum(e.in_flight for e, _ in ests),
        capacity=capacity,
        ttft_ms=best.ttft_ms,
        latency_ms=best.latency_ms(tokens, cap),
        error_rate=best.error_rate,
        queued=_queued(ests),
        recent_ttft_ms=best.recent_ttft_ms,
        stalled_ms=best.stalled_ms,
    )


def _queued(ests: list[tuple[Estimate, int | None]]) -> int | None:
    reported = [e.queued for e, _ in ests if e.queued is not None]
    return sum(reported) if reported else None


def limit_reason(cfg: AdaptiveConfig, view: ModelView) -> str | None:
    """Why a model is passed over under the route's limits (None: it may serve)."""
    if not view.room:
        if view.queued is not None:
            return (
                f"{AT_CAPACITY}: {view.in_flight}/{view.capacity} in flight "
                f"(server queue metrics: {view.queued} running + waiting)"
            )
        return f"{AT_CAPACITY}: {view.in_flight}/{view.capacity} in flight"
    ttft, lat = view.ttft_ms, view.latency_ms
    stall = _stall_note(view)
    if cfg.max_ttft_ms is not None and ttft is not None and ttft > cfg.max_ttft_ms:
        return f"predicted ttft {ttft:.0f} ms > max_ttft_ms {cfg.max_ttft_ms:g}{stall}"
    if cfg.max_latency_ms is not None and lat is not None and lat > cfg.max_latency_ms:
        return f"predicted latency {lat:.0f} ms > max_latency_ms {cfg.max_latency_ms:g}{stall}"
    if cfg.max_error_rate is not None and view.error_rate > cfg.max_error_rate:
        return f"error rate {view.error_rate:.2f} > max_error_rate {cfg.max_error_rate:g}"
    return _probation(cfg, view)


def _stall_note(view: ModelView) -> str:
    """Why the prediction is what it is when a stall set it."""
    if view.ttft_ms is None or view.stalled_ms < view.ttft_ms:
        return ""
    return f" (no news for {view.stalled_ms:.0f} ms with {view.in_flight} in flight)"


def _probation(cfg: AdaptiveConfig, view: ModelView) -> str | None:
    """A model whose latest answers broke the route's time limit, now faded back under it, is
    tried again one request at a time (a half-open breaker): with a request of it already in
    flight, the others go elsewhere until that one answers in time."""
    limit = cfg.max_ttft_ms if cfg.max_ttft_ms is not None else cfg.max_latency_ms
    recent = view.recent_ttft_ms
    if limit is None or recent is None or recent <= limit or view.in_flight == 0:
        return None
    return (
        f"on probation: latest ttft {recent:.0f} ms > {limit:g} ms, "
        f"{view.in_flight} request(s) in flight to it"
    )


class AdaptiveStrategy:
    """Wraps ``inner``; see the module docstring."""

    def __init__(
        self,
        inner: Strategy,
        cfg: AdaptiveConfig,
        portfolio: Mapping[str, ModelEntry],
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.cfg = cfg
        self.portfolio = portfolio

    def _tokens(self, model: str, decision: dict[str, Any]) -> float | None:
        """The predicted completion length from the inner plan's candidates, if it priced
        them (a learned route)."""
        toks: float | None = None
        entry = self.portfolio.get(model)
        prompt = decision.get("prompt_tokens")
        price = entry.deployments[0].price if entry and entry.deployments else None
        if price is not None and price.output_token and isinstance(prompt, int):
            for c in decision.get("candidates", ()):
                if c.get("model") == model and "cost" in c:
                    raw = (float(c["cost"]) - prompt * float(price.input_token)) / float(
                        price.output_token
                    )
                    toks = max(raw, 1.0)
                    break
        return toks

    def _reason(self, view: ModelView) -> str | None:
        return limit_reason(self.cfg, view)

    def _preferred(
        self, views: dict[str, ModelView], decision: dict[str, Any], needs: Needs
    ) -> str | None:
        """The inner router's choice re-made with latency priced in (``latency_weight``)."""
        weight = self.cfg.latency_weight
        choose = getattr(self.inner, "choose", None)
        models: list[str] | None = getattr(self.inner, "models", None)
        cands = {c["model"]: c for c in decision.get("candidates", ()) if "p_good" in c}
        if not weight or choose is None or models is None or not cands:
            return None
        lats = {m: v.latency_ms for m, v in views.items() if v.latency_ms is not None}
        # a model never measured is neither favoured nor penalised: the others' mean
        neutral = sum(lats.values()) / len(lats) if lats else 0.0
        p, cost, ok = [], [], []
        for m in models:
            c = cands.get(m)
            view = views.get(m)
            lat = lats.get(m, neutral)
            p.append(float(c["p_good"]) if c else 0.0)
            cost.append(float(c["cost"]) + weight * lat / 1000.0 if c else math.inf)
            ok.append(c is not None and (view is None or self._reason(view) is None))
        if not any(ok):
            return None
        choice = int(choose(p, cost, ok, needs.budget_pressure))
        return models[choice]

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        inner = self.inner.plan(request, needs, decision)
        live = needs.live
        attempt = next(inner)
        if not isinstance(live, LiveStats):
            return (yield from _passthrough(inner, attempt))
        views: dict[str, ModelView] = {}

        def view(model: str) -> ModelView:
            if model not in views:
                toks = self._tokens(model, decision)
                views[model] = model_view(self.portfolio[model], live, toks, needs.max_tokens)
            return views[model]

        for c in decision.get("candidates", ()):
            if c.get("eligible", True) and c.get("model") in self.portfolio:
                view(c["model"])
        preferred = self._preferred(views, decision, needs)
        if preferred is not None:
            decision["latency_choice"] = preferred
        passed: list[tuple[Attempt, str]] = []
        last: Outcome | None = None
        while True:
            reason = self._reason(view(attempt.model))
            if reason is None and preferred is not None and attempt.model != preferred:
                reason = "latency_weight"
            if reason is not None:
                passed.append((attempt, reason))
                decision.setdefault("passed_over", []).append(
                    {"model": attempt.model, "reason": reason}
                )
                sent = Outcome(attempt.model, error=GatewayError("overloaded", reason))
            else:
                last = yield attempt
                preferred = None  # the re-ranked choice had its turn
                sent = last
            try:
                attempt = inner.send(sent)
            except StopIteration as stop:
                result: Outcome | None = stop.value
                if result is not None and result.ok and result is last:
                    return result
                break
        return (yield from self._last_resort(passed, views, decision, last))

    def _last_resort(
        self,
        passed: list[tuple[Attempt, str]],
        views: dict[str, ModelView],
        decision: dict[str, Any],
        last: Outcome | None,
    ) -> Plan:
        """Nothing else could serve: the models passed over, those with room first, then the
        fastest (a capacity or latency limit never refuses a request)."""

        def key(item: tuple[Attempt, str]) -> tuple[bool, float]:
            v = views[item[0].model]
            return (not v.room, v.latency_ms if v.latency_ms is not None else 0.0)

        seen: set[str] = set()
        for attempt, reason in sorted(passed, key=key):
            if attempt.model in seen:
                continue
            seen.add(attempt.model)
            last = yield attempt
            if last.ok:
                decision["chosen"] = attempt.model
                decision["served_despite"] = reason
                return last
        return last


def _passthrough(inner: Plan, attempt: Attempt) -> Plan:
    while True:
        outcome = yield attempt
        try:
            attempt = inner.send(outcome)
        except StopIteration as stop:
            result: Outcome | None = stop.value
            return result


def adapt(route: RouteConfig, strategy: Strategy, portfolio: Mapping[str, ModelEntry]) -> Strategy:
    """``strategy`` wrapped when the route has an ``adaptive:`` section or a model with a
    deployment capacity; as it is otherwise (and for strategies that call several models for
    one answer: a cascade's voters are not interchangeable)."""
    from modelmix.routing.registry import strategy_spec

    if strategy_spec(route.strategy).summed_cost:
        return strategy
    models = route.models or list(getattr(strategy, "models", []))
    capacity = any(
        d.capacity is not None for m in models if m in portfolio for d in portfolio[m].deployments
    )
    cfg = route.adaptive
    if cfg is None and not capacity:
        return strategy
    return AdaptiveStrategy(strategy, cfg or AdaptiveConfig(), portfolio)
