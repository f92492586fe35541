"""The configuration ``modelmix serve`` uses when it is given none.

A demo portfolio served by the in-process *simulated* upstream (so the first request works with
no keys and no network), plus real models for every provider whose key is in the environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from modelmix.config import SIMULATED_BASE_URL, Config, parse_config
from modelmix.pricing import resolve_price
from modelmix.providers.specs import spec_for
from modelmix.types import Usage

#: The simulated demo models. Each speaks a different wire format, so the demo exercises the
#: translation between APIs. Their prices are made up and marked as such.
_SIMULATED: list[dict[str, Any]] = [
    {
        "name": "sim-small",
        "provider": "openai",
        "model": "sim-small",
        "base_url": SIMULATED_BASE_URL,
        "price": {"input": "0.10", "output": "0.40"},
        "capabilities": {"vision": True, "context_window": 32000},
        "description": "SIMULATED small model (OpenAI wire format); made-up prices",
    },
    {
        "name": "sim-medium",
        "provider": "anthropic",
        "model": "sim-medium",
        "base_url": SIMULATED_BASE_URL,
        "price": {"input": "1.00", "output": "5.00"},
        # json_schema: Anthropic's structured outputs (output_config.format), which an
        # Anthropic client's request carries as it is; an OpenAI client's is refused by the
        # adapter (no translation yet), so the model is skipped for it with that reason.
        "capabilities": {"vision": True, "json_object": False, "json_schema": True},
        "description": "SIMULATED medium model (Anthropic wire format); made-up prices",
    },
    {
        "name": "sim-large",
        "provider": "gemini",
        "model": "sim-large",
        "base_url": SIMULATED_BASE_URL,
        "price": {"input": "3.00", "output": "15.00"},
        "capabilities": {"vision": True, "context_window": 1000000},
        "description": "SIMULATED large model (Gemini wire format); made-up prices",
    },
    {
        "name": "sim-unreliable",
        "provider": "openai",
        "model": "sim-500",
        "base_url": SIMULATED_BASE_URL,
        "price": {"input": "0.05", "output": "0.20"},
        "description": "SIMULATED model that always fails with HTTP 500 (to show fallbacks)",
    },
    {
        "name": "sim-embed",
        "provider": "openai",
        "model": "sim-embed",
        "kind": "embedding",
        "base_url": SIMULATED_BASE_URL,
        "price": {"input": "0.02"},
        "dimensions": 256,
        "description": "SIMULATED embedding model (OpenAI wire format, /v1/embeddings); "
        "deterministic vectors, made-up price",
    },
]

_SIMULATED_ROUTES: list[dict[str, Any]] = [
    {
        "name": "smart",
        "strategy": "learned",
        "models": ["sim-small", "sim-medium", "sim-large"],
        "learned": {
            "quality_target": 0.95,
            "profiles": {"sim-small": 0.6, "sim-medium": 0.75, "sim-large": 0.85},
        },
        "description": "SIMULATED: per-prompt choice by predicted difficulty (made-up profiles)",
    },
    {
        "name": "demo-fallback",
        "strategy": "fallback",
        "models": ["sim-unreliable", "sim-small"],
        "description": "SIMULATED: the first model always fails, the second answers",
    },
]

#: Real models added when their provider's key is in the environment (``auto`` chains them
#: cheapest first, by catalog price).
_FROM_ENV: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "OPENAI_API_KEY",
        [
            {"name": "gpt-4o-mini", "provider": "openai", "capabilities": {"vision": True}},
            {"name": "gpt-4.1-mini", "provider": "openai", "capabilities": {"vision": True}},
            {"name": "gpt-4o", "provider": "openai", "capabilities": {"vision": True}},
        ],
    ),
    (
        "GEMINI_API_KEY",
        [
            {
                "name": "gemini-2.0-flash",
                "provider": "gemini",
                "capabilities": {"vision": True, "context_window": 1000000},
            },
        ],
    ),
    (
        "GROQ_API_KEY",
        [{"name": "llama-3.1-8b-instant", "provider": "groq", "capabilities": {}}],
    ),
    (
        "DEEPSEEK_API_KEY",
        [{"name": "deepseek-chat", "provider": "deepseek", "capabilities": {"json_schema": False}}],
    ),
    (
        "MISTRAL_API_KEY",
        [{"name": "mistral-small-latest", "provider": "mistral", "capabilities": {}}],
    ),
    (
        "ANTHROPIC_API_KEY",
        [
            {
                "name": "claude-3-5-haiku-latest",
                "provider": "anthropic",
                "capabilities": {"json_object": False, "json_schema": False, "vision": True},
            },
            {
                "name": "claude-sonnet-4-0",
                "provider": "anthropic",
                "capabilities": {
                    "json_object": False,
                    "json_schema": False,
                    "vision": True,
                    "context_window": 200000,
                },
            },
        ],
    ),
    (
        "OPENROUTER_API_KEY",
        [
            {
                "name": "openrouter/openai/gpt-4o-mini",
                "provider": "openrouter",
                "model": "openai/gpt-4o-mini",
                "capabilities": {"vision": True},
            },
        ],
    ),
]


#: The call whose catalog price orders the ``auto`` route: three input tokens per output token.
_TYPICAL_CALL = Usage(prompt_tokens=3_000, completion_tokens=1_000)


def _typical_cost(model: dict[str, Any]) -> tuple[bool, Decimal]:
    """Sort key: the catalog price of a typical call; models missing from the catalog last."""
    spec = spec_for(model["provider"])
    kind, base_url = spec.adapter, spec.default_url
    price = resolve_price(kind, model.get("model", model["name"]), base_url=base_url)
    return (price is None, price.cost(_TYPICAL_CALL) if price else Decimal(0))


def default_config(env: Mapping[str, str]) -> Config:
    """The zero-config portfolio: simulated demo models plus whatever keys ``env`` holds."""
    real: list[dict[str, Any]] = []
    for variable, models in _FROM_ENV:
        if env.get(variable):
            real.extend(models)
    sim_names = [
        m["name"]
        for m in _SIMULATED
        if m["name"] != "sim-unreliable" and m.get("kind", "chat") == "chat"
    ]
    auto = [m["name"] for m in sorted(real, key=_typical_cost)] or sim_names
    data = {
        "models": [*_SIMULATED, *real],
        "routes": [
            {
                "name": "auto",
                "strategy": "fallback",
                "models": auto,
                "description": "cheapest first, falling back on failure",
            },
            *_SIMULATED_ROUTES,
        ],
    }
    return parse_config(data, "<built-in default>")
