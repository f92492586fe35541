"""Strategies decide which models to call; the engine calls them.

A strategy's ``plan`` is a generator, like httpx's auth flow: it yields an ``Attempt`` (a model to
call), receives that call's ``Outcome`` and yields the next attempt or returns the outcome whose
answer the client gets. It does no I/O, so fallbacks (and later cascades) are tested without a
network by sending it outcomes by hand. It writes what it decided, and why, into ``decision``
for the ledger.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from modelmix.budgets.degrade import degrade_chain, unit_prices
from modelmix.config import RouteConfig, RuleWhen
from modelmix.errors import GatewayError, UpstreamError
from modelmix.portfolio import ModelEntry
from modelmix.routing.candidates import no_candidate_error, screen
from modelmix.routing.needs import Needs
from modelmix.routing.registry import strategy_spec
from modelmix.types import ChatRequest, ChatResponse


@dataclass(slots=True, frozen=True)
class Attempt:
    model: str
    #: A different request to send (e.g. a cascade's judge prompt); None: the client's request.
    request: ChatRequest | None = None


@dataclass(slots=True)
class Outcome:
    """What came of an attempt: an error, or success (with the full answer, except for a
    stream, where the engine only knows the answer has started)."""

    model: str
    response: ChatResponse | None = None
    error: UpstreamError | GatewayError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


#: The generator a strategy returns: yields attempts, is sent outcomes, returns the final one.
Plan = Generator[Attempt, Outcome, Outcome | None]


class Strategy(Protocol):
    name: str

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan: ...


def _chain_plan(
    route: str,
    chain: Sequence[str],
    portfolio: Mapping[str, ModelEntry],
    request: ChatRequest,
    needs: Needs,
    decision: dict[str, Any],
) -> Plan:
    candidates = screen(chain, portfolio, request, needs)
    decision["candidates"] = [c.as_dict() for c in candidates]
    eligible = [c.model for c in candidates if c.eligible]
    if not eligible:
        raise no_candidate_error(route, candidates)
    if needs.budget_pressure > 0.0 and len(eligible) > 1:
        prices = unit_prices(portfolio, eligible)  # nothing priced: nothing to go by
        kept = degrade_chain(eligible, prices, needs.budget_pressure) if prices else eligible
        if len(kept) < len(eligible):
            decision["budget_degraded"] = {
                "pressure": round(needs.budget_pressure, 3),
                "dropped": [m for m in eligible if m not in kept],
            }
            eligible = kept
    last: Outcome | None = None
    for model in eligible:
        last = yield Attempt(model)
        if last.ok:
            decision["chosen"] = model
            return last
    return last


class FallbackStrategy:
    """Try the chain in order; the first model that answers wins."""

    def __init__(self, name: str, chain: Sequence[str], portfolio: Mapping[str, ModelEntry]):
        self.name = name
        self.chain = list(chain)
        self.portfolio = portfolio

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        decision["strategy"] = "fallback"
        return (
            yield from _chain_plan(self.name, self.chain, self.portfolio, request, needs, decision)
        )


def rule_matches(when: RuleWhen, request: ChatRequest, needs: Needs) -> bool:
    if any(request.metadata.get(k) != v for k, v in when.metadata.items()):
        return False
    checks = (
        (when.tools, needs.tools),
        (when.images, needs.images),
        (when.json_output, needs.json_object or needs.json_schema),
        (when.stream, needs.stream),
    )
    if any(want is not None and want != have for want, have in checks):
        return False
    if when.min_prompt_tokens is not None and needs.prompt_tokens < when.min_prompt_tokens:
        return False
    return not (
        when.max_prompt_tokens is not None and needs.prompt_tokens >= when.max_prompt_tokens
    )


class RulesStrategy:
    """The first rule whose conditions hold picks the chain; otherwise the route's default."""

    def __init__(self, route: RouteConfig, portfolio: Mapping[str, ModelEntry]):
        self.name = route.name
        self.route = route
        self.portfolio = portfolio

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        decision["strategy"] = "rules"
        chain: Sequence[str] = self.route.models
        decision["rule"] = None
        for i, rule in enumerate(self.route.rules):
            if rule_matches(rule.when, request, needs):
                chain = rule.models
                decision["rule"] = i
                break
        if not chain:
            raise GatewayError(
                "invalid_request",
                f"No rule of route {self.name!r} matches this request and it has no default.",
                param="model",
                code="no_matching_rule",
            )
        return (yield from _chain_plan(self.name, chain, self.portfolio, request, needs, decision))


def _build(route: RouteConfig, portfolio: Mapping[str, ModelEntry]) -> Strategy:
    from modelmix.adaptive.explore import explore  # online exploration (issue 15)
    from modelmix.adaptive.plan import adapt  # latency/capacity knobs (issue 15)

    built = adapt(route, strategy_spec(route.strategy).build(route, portfolio), portfolio)
    return explore(route, built, portfolio)


def _is_embedding(portfolio: Mapping[str, ModelEntry], name: str) -> bool:
    entry = portfolio.get(name)
    return entry is not None and entry.kind == "embedding"


class Router:
    """Maps the ``model`` a client asks for to a strategy: a route, or a single model."""

    def __init__(self, routes: Sequence[RouteConfig], portfolio: Mapping[str, ModelEntry]):
        self.portfolio = portfolio
        self.routes: dict[str, Strategy] = {
            route.name: _build(route, portfolio) for route in routes
        }
        # embedding models (and routes of them) serve /v1/embeddings only (issue 12)
        self._direct = {
            name: FallbackStrategy(name, [name], portfolio)
            for name, entry in portfolio.items()
            if entry.kind == "chat"
        }
        self._embedding = {
            route.name
            for route in routes
            if route.models and all(_is_embedding(portfolio, m) for m in route.models)
        } | {name for name, entry in portfolio.items() if entry.kind == "embedding"}

    def resolve(self, model: str) -> tuple[Strategy, str | None]:
        """The strategy for ``model`` and the route name (None for a direct model)."""
        route = self.routes.get(model)
        if route is not None and model not in self._embedding:
            return route, model
        direct = self._direct.get(model)
        if direct is not None:
            return direct, None
        if model in self._embedding:
            raise GatewayError(
                "invalid_request",
                f"{model!r} is an embedding model: use POST /v1/embeddings.",
                param="model",
                code="model_not_chat",
            )
        raise GatewayError(
            "not_found",
            f"The model {model!r} does not exist. Known models and routes: "
            + ", ".join(sorted([*self.routes, *self._direct])),
            param="model",
            code="model_not_found",
        )
