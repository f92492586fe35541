"""Config checks for embedding models (``kind: embedding``), run by ``config.parse_config``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelmix.providers.specs import spec_for

if TYPE_CHECKING:
    from modelmix.config import Config

#: Wire formats (adapter kinds) with an embeddings API modelmix speaks.
EMBEDDING_KINDS = ("openai", "gemini")


def cross_check(config: Config) -> list[str]:
    """An embedding model needs a provider with an embeddings API; a route holds either
    embedding models only or chat models only."""
    errors: list[str] = []
    kinds = {m.name: m.kind for m in config.models}
    for i, m in enumerate(config.models):
        if m.kind == "embedding" and spec_for(m.provider).adapter not in EMBEDDING_KINDS:
            errors.append(
                f"models[{i}].provider: {m.provider!r} has no embeddings API modelmix speaks "
                f"(embedding models need a provider speaking one of {list(EMBEDDING_KINDS)})"
            )
    for i, route in enumerate(config.routes):
        used = {kinds[n] for n in route.all_models() if n in kinds}
        if len(used) > 1:
            errors.append(
                f"routes[{i}].models: mixes chat and embedding models; "
                "a route serves one or the other"
            )
        elif used == {"embedding"} and route.strategy != "fallback":
            errors.append(f"routes[{i}].strategy: a route of embedding models is a fallback chain")
    return errors
