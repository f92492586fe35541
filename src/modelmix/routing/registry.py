"""The strategy registry: one :class:`StrategySpec` per ``strategy:`` a route may name.

A spec holds the strategy's settings class (the pydantic model of its route section, e.g.
``learned: {...}``), its builder and the few facts other layers need (budgets sum a
cascade's model prices; learned routers want the tokenizer loaded at start). ``RouteConfig``
validates a route against its strategy's spec, ``Router`` builds it with the spec's builder,
and nothing compares strategy names as strings.

A new strategy is one module: define a ``Strategy`` (``plan`` generator), optionally a
settings class, and call :func:`register_strategy` at import time (before the config is
parsed). Built-in strategies register below; their builders import lazily, so this module
stays light (config.py imports it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from modelmix.routing.route_config import (
    CascadeRouteConfig,
    LearnedRouteConfig,
    build_cascade,
    build_learned,
)

if TYPE_CHECKING:
    from modelmix.config import RouteConfig
    from modelmix.portfolio import ModelEntry
    from modelmix.routing.strategy import Strategy

__all__ = ["STRATEGIES", "StrategySpec", "register_strategy", "strategy_spec"]

Builder = Callable[["RouteConfig", Mapping[str, "ModelEntry"]], "Strategy"]


@dataclass(frozen=True, slots=True)
class StrategySpec:
    """Everything the config, the router and budgets know about one strategy."""

    name: str
    build: Builder
    #: The pydantic model of the route's settings section (the key named ``name``), if any.
    settings: type[BaseModel] | None = None
    #: The settings section must be present.
    settings_required: bool = False
    #: Every model the settings may call, beyond the route's ``models`` (config checks).
    settings_models: Callable[[Any], list[str]] | None = None
    #: The route may leave ``models`` empty (its settings name the models).
    models_optional: bool = False
    #: A request may call several of its models: budgets reserve the sum of their prices.
    summed_cost: bool = False
    #: Plans count prompt tokens: the gateway loads the tokenizer at start.
    uses_tokenizer: bool = False


STRATEGIES: dict[str, StrategySpec] = {}


def register_strategy(spec: StrategySpec) -> StrategySpec:
    """Add (or replace) a strategy; routes may name it from then on."""
    STRATEGIES[spec.name] = spec
    return spec


def strategy_spec(name: str) -> StrategySpec:
    """The spec of strategy ``name``; ``KeyError`` naming the known ones if there is none."""
    try:
        return STRATEGIES[name]
    except KeyError:
        known = ", ".join(STRATEGIES)
        raise KeyError(f"unknown strategy {name!r} (known: {known})") from None


def _fallback(route: RouteConfig, portfolio: Mapping[str, ModelEntry]) -> Strategy:
    from modelmix.routing.strategy import FallbackStrategy

    return FallbackStrategy(route.name, route.models, portfolio)


def _rules(route: RouteConfig, portfolio: Mapping[str, ModelEntry]) -> Strategy:
    from modelmix.routing.strategy import RulesStrategy

    return RulesStrategy(route, portfolio)


def _learned(route: RouteConfig, portfolio: Mapping[str, ModelEntry]) -> Strategy:
    cfg = route.learned or LearnedRouteConfig()
    return build_learned(route.name, route.models, cfg, portfolio)


def _cascade(route: RouteConfig, portfolio: Mapping[str, ModelEntry]) -> Strategy:
    assert route.cascade is not None  # settings_required
    return build_cascade(route.name, route.cascade, portfolio)


def _learned_models(cfg: LearnedRouteConfig) -> list[str]:
    return list(cfg.profiles)


def _cascade_models(cfg: CascadeRouteConfig) -> list[str]:
    return cfg.models()


register_strategy(StrategySpec("fallback", _fallback))
register_strategy(StrategySpec("rules", _rules))
register_strategy(
    StrategySpec(
        "learned",
        _learned,
        settings=LearnedRouteConfig,
        settings_models=_learned_models,
        uses_tokenizer=True,
    )
)
register_strategy(
    StrategySpec(
        "cascade",
        _cascade,
        settings=CascadeRouteConfig,
        settings_required=True,
        settings_models=_cascade_models,
        models_optional=True,
        summed_cost=True,
        uses_tokenizer=True,
    )
)
