"""A strategy registered from one module is accepted by the config and routes requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from modelmix.config import ConfigError, parse_config
from modelmix.portfolio import build_portfolio
from modelmix.routing.needs import needs_of
from modelmix.routing.registry import STRATEGIES
from modelmix.routing.strategy import Attempt, Outcome, Router
from modelmix.types import ChatRequest


@pytest.fixture()
def toy() -> Iterator[None]:
    from tests.routing import toy_strategy

    STRATEGIES["toy"] = toy_strategy.SPEC
    yield
    del STRATEGIES["toy"]


def _config(toy_section: object) -> dict[str, object]:
    models = [{"name": n, "provider": "vllm"} for n in ("a", "b")]
    route = {"name": "r", "strategy": "toy", "models": ["a"], "toy": toy_section}
    return {"models": models, "routes": [route]}


def test_a_registered_strategy_is_configured_and_routes(toy: None) -> None:
    config = parse_config(_config({"pick": "b"}))
    route = config.routes[0]
    assert route.all_models() == ["a", "b"]  # the settings' models count for the checks
    both = parse_config(_config({"pick": "a"})).routes[0]
    assert both.all_models() == ["a"]  # named by the route and its settings: listed once
    dumped = route.model_dump(mode="json", exclude_defaults=True)
    assert dumped["toy"] == {"pick": "b"} and "options" not in dumped
    assert parse_config({**_config({"pick": "b"}), "routes": [dumped]}).routes[0] == route
    router = Router(config.routes, build_portfolio(config, env={}))
    strategy, name = router.resolve("r")
    assert name == "r"
    request = ChatRequest(model="r", messages=[{"role": "user", "content": "hi there"}])
    decision: dict[str, object] = {}
    plan = strategy.plan(request, needs_of(request), decision)
    assert next(plan) == Attempt("b")
    with pytest.raises(StopIteration) as stop:
        plan.send(Outcome("b"))
    assert stop.value.value == Outcome("b")
    assert decision == {"strategy": "toy", "prompt_tokens": 2}


def test_a_registered_strategy_validates_its_section(toy: None) -> None:
    with pytest.raises(ConfigError, match="pick"):
        parse_config(_config({"choose": "b"}))
    missing = _config({"pick": "b"})
    del missing["routes"][0]["toy"]  # type: ignore[index]
    with pytest.raises(ConfigError, match="needs a toy section"):
        parse_config(missing)


def test_unknown_strategies_and_misplaced_sections_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown strategy 'toy'"):
        parse_config(_config({"pick": "b"}))
    bad = {
        "models": [{"name": "a", "provider": "vllm"}],
        "routes": [{"name": "r", "models": ["a"], "learned": {}}],
    }
    with pytest.raises(ConfigError, match="learned settings are only allowed"):
        parse_config(bad)
