"""Adapter lookup by kind (``Deployment.provider``)."""

from __future__ import annotations

from modelmix.providers.base import ProviderAdapter
from modelmix.wire.anthropic_messages import upstream as anthropic
from modelmix.wire.gemini import upstream as gemini
from modelmix.wire.openai_chat import upstream as openai
from modelmix.wire.openai_responses import upstream as openai_responses

__all__ = ["ADAPTERS", "get_adapter"]

ADAPTERS: dict[str, ProviderAdapter] = {
    "openai": openai.ADAPTER,
    "anthropic": anthropic.ADAPTER,
    "gemini": gemini.ADAPTER,
    "openai-responses": openai_responses.ADAPTER,
}


def get_adapter(kind: str) -> ProviderAdapter:
    """The adapter for ``kind``; ``KeyError`` naming the known kinds if there is none."""
    try:
        return ADAPTERS[kind]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise KeyError(f"unknown provider kind {kind!r} (known: {known})") from None
