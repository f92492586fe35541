"""Small builders shared by tests."""

from __future__ import annotations

from typing import Any

from modelmix.config import Config, parse_config


def make_config(
    models: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None, **extra: Any
) -> Config:
    return parse_config({"models": models, "routes": routes or [], **extra})


def sim_model(
    name: str, provider: str = "openai", upstream: str | None = None, **extra: Any
) -> dict[str, Any]:
    """A model served by the in-process simulator, with a price override."""
    return {
        "name": name,
        "provider": provider,
        "model": upstream or name,
        "base_url": "builtin:simulated",
        "price": {"input": "1", "output": "2"},
        **extra,
    }
