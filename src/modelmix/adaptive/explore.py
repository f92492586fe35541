"""``ExploreStrategy``: online exploration of a route's candidate models by Thompson sampling
(issue 15, item 4; sans-I/O: reads the posteriors in ``needs.explore``, does no I/O).

Each candidate's acceptance has a Beta posterior: the route's ``prior`` plus the labels of the
requests it served on this route (mean client feedback, else the judge's score, in [0, 1]; read
from the ledger by ``quality/explore.py``, swapped whole into ``Posteriors``). At most ``share``
of the route's requests explore (a counter, not a coin: the share is a ceiling): for such a
request each eligible candidate's acceptance is drawn from its posterior and the highest draw
is called first; if it is the route's default (its first model), the request is served as
usual. An explored candidate that fails hands the request to the route's own plan.

Guardrails: a candidate is eligible only if the request can be sent to it (capabilities,
context), no budget of the request is under pressure (``needs.budget_pressure > 0``: a budget
nears its limit), its predicted cost is within ``max_cost`` (or the learned route's
``max_cost``), and the ``adaptive:`` limits do not pass it over (capacity, ``max_ttft_ms``,
``max_latency_ms``, ``max_error_rate``: the same checks as ``plan.py``). The decision records
``explore``: the candidate, its posterior mean and draw, and why (or why nothing was explored).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from modelmix.adaptive.config import AdaptiveConfig, ExploreConfig
from modelmix.adaptive.live import LiveStats
from modelmix.adaptive.plan import limit_reason, model_view
from modelmix.portfolio import ModelEntry
from modelmix.routing.candidates import screen
from modelmix.routing.needs import Needs
from modelmix.routing.strategy import Attempt, Plan, Strategy
from modelmix.types import ChatRequest

if TYPE_CHECKING:
    from modelmix.config import RouteConfig

#: Output tokens assumed for a cost prediction when neither ``max_tokens`` nor the live
#: estimates know better.
DEFAULT_TOKENS = 256


class Posteriors:
    """(route, model) -> (sum of labels, labelled requests), swapped whole on refresh."""

    __slots__ = ("arms",)

    def __init__(self, arms: dict[tuple[str, str], tuple[float, int]] | None = None) -> None:
        self.arms: dict[tuple[str, str], tuple[float, int]] = arms or {}

    def beta(self, route: str, model: str, prior: tuple[float, float]) -> tuple[float, float]:
        """The Beta parameters of ``model``'s acceptance on ``route``."""
        s, n = self.arms.get((route, model), (0.0, 0))
        return prior[0] + s, prior[1] + (n - s)


def predicted_cost(entry: ModelEntry, needs: Needs, live: LiveStats | None) -> float | None:
    """USD of one request to ``entry`` (None: not priced)."""
    dep = entry.deployments[0] if entry.deployments else None
    if dep is None or dep.price is None:
        return None
    toks: float = needs.max_tokens or DEFAULT_TOKENS
    if live is not None and needs.max_tokens is None:
        typical = live.estimate(dep.id).tokens
        toks = typical if typical else toks
    price = dep.price
    return float(needs.prompt_tokens * price.input_token) + float(toks * float(price.output_token))


class ExploreStrategy:
    """Wraps ``inner`` (the route's strategy, adaptive wrapper included)."""

    def __init__(
        self,
        inner: Strategy,
        route: RouteConfig,
        portfolio: Mapping[str, ModelEntry],
    ) -> None:
        assert route.explore is not None
        self.inner = inner
        self.name = inner.name
        self.route = route.name
        self.cfg: ExploreConfig = route.explore
        self.limits = route.adaptive or AdaptiveConfig()
        self.portfolio = portfolio
        self.candidates = list(self.cfg.candidates or route.models)
        self.default = route.models[0] if route.strategy in ("fallback", "rules") else None
        learned = route.learned
        self.max_cost = self.cfg.max_cost or (learned.max_cost if learned else None)
        self.rng = random.Random(self.cfg.seed)
        self.thompson = self.cfg.method == "thompson"
        self.seen = 0
        self.explored = 0

    def __getattr__(self, name: str) -> Any:  # models, choose...: the inner strategy's
        return getattr(self.inner, name)

    def _blocked(self, model: str, needs: Needs) -> str | None:
        """Why ``model`` may not be explored for this request (None: it may)."""
        entry = self.portfolio[model]
        live = needs.live if isinstance(needs.live, LiveStats) else None
        if self.max_cost is not None:
            cost = predicted_cost(entry, needs, live)
            if cost is not None and cost > self.max_cost:
                return f"predicted cost ${cost:.6f} > max_cost {self.max_cost:g}"
        if live is not None:
            return limit_reason(self.limits, model_view(entry, live, None, needs.max_tokens))
        return None

    def _draw(
        self, request: ChatRequest, needs: Needs, decision: dict[str, Any]
    ) -> tuple[str, dict[str, Any]] | None:
        """The candidate to explore for this request and the decision's note (None: serve as
        usual; the note, if any, says why)."""
        post = needs.explore
        if post is None or not isinstance(post, Posteriors):
            return None
        if needs.budget_pressure > 0.0:
            decision["explore"] = {"candidate": None, "why": "budget pressure"}
            return None
        screened = screen(self.candidates, self.portfolio, request, needs)
        blocked: dict[str, str] = {}
        best: tuple[float, str, float] | None = None
        for c in screened:
            why = c.reason if not c.eligible else self._blocked(c.model, needs)
            if why is not None:
                blocked[c.model] = why
                continue
            a, b = post.beta(self.route, c.model, self.cfg.prior)
            draw = self.rng.betavariate(a, b) if self.thompson else self.rng.random()
            if best is None or draw > best[0]:
                best = (draw, c.model, a / (a + b))
        if best is None or best[1] == self.default:
            if blocked:
                decision["explore"] = {"candidate": None, "why": "limits", "blocked": blocked}
            return None
        draw, model, mean = best
        note = {
            "candidate": model,
            "mean": round(mean, 4),
            "draw": round(draw, 4),
            "why": f"highest {self.cfg.method} draw of {len(screened) - len(blocked)} candidates",
        }
        if blocked:
            note["blocked"] = blocked
        return model, note

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        self.seen += 1
        picked = None
        if self.explored + 1 <= self.cfg.share * self.seen:
            picked = self._draw(request, needs, decision)
        if picked is None:
            return (yield from self.inner.plan(request, needs, decision))
        self.explored += 1
        model, note = picked
        decision["explore"] = note
        outcome = yield Attempt(model)
        if outcome.ok:
            decision["chosen"] = model
            return outcome
        note["failed"] = True  # the route's own plan serves the request
        return (yield from self.inner.plan(request, needs, decision))


def explore(
    route: RouteConfig, strategy: Strategy, portfolio: Mapping[str, ModelEntry]
) -> Strategy:
    """``strategy`` wrapped when the route has an ``explore:`` section."""
    if route.explore is None:
        return strategy
    return ExploreStrategy(strategy, route, portfolio)
