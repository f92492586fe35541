"""A toy routing strategy, registered from this one module (the registry test imports it):
its route section ``toy: {pick: <model>}`` names the one model it calls."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from modelmix.config import RouteConfig
from modelmix.portfolio import ModelEntry
from modelmix.routing.needs import Needs
from modelmix.routing.registry import StrategySpec, register_strategy
from modelmix.routing.strategy import Attempt, Plan
from modelmix.types import ChatRequest


class ToySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pick: str


class ToyStrategy:
    def __init__(self, name: str, pick: str) -> None:
        self.name = name
        self.pick = pick

    def plan(self, request: ChatRequest, needs: Needs, decision: dict[str, Any]) -> Plan:
        decision["strategy"] = "toy"
        decision["prompt_tokens"] = request.facts.text_tokens
        return (yield Attempt(self.pick))


def build(route: RouteConfig, portfolio: Mapping[str, ModelEntry]) -> ToyStrategy:
    settings = route.settings
    assert isinstance(settings, ToySettings)
    return ToyStrategy(route.name, settings.pick)


def _models(settings: ToySettings) -> list[str]:
    return [settings.pick]


SPEC = register_strategy(
    StrategySpec(
        "toy", build, settings=ToySettings, settings_required=True, settings_models=_models
    )
)
