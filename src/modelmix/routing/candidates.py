"""Capability filter: which models of a chain can serve a request, and why the others cannot.

A model lacking something the request needs is skipped with a reason, never sent a request it
would mangle: no parameter is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modelmix.errors import UnsupportedParameter
from modelmix.portfolio import ModelEntry
from modelmix.providers.registry import get_adapter
from modelmix.routing.needs import Needs
from modelmix.types import ChatRequest


@dataclass(slots=True, frozen=True)
class Candidate:
    model: str
    eligible: bool
    reason: str | None = None

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"model": self.model, "eligible": self.eligible}
        if self.reason:
            out["reason"] = self.reason
        return out


def _reason(entry: ModelEntry, request: ChatRequest, needs: Needs) -> str | None:
    if entry.unavailable:
        return f"unavailable: {entry.unavailable}"
    caps = entry.capabilities
    if needs.tools and not caps.tools:
        return "does not support tools"
    if needs.images and not caps.vision:
        return "does not support images"
    if needs.json_schema and not caps.json_schema:
        return "does not support json_schema output"
    if needs.json_object and not caps.json_object:
        return "does not support json_object output"
    if needs.stream and not caps.streaming:
        return "does not support streaming"
    if needs.max_tokens and caps.max_output_tokens and needs.max_tokens > caps.max_output_tokens:
        return f"max_tokens {needs.max_tokens} exceeds its limit of {caps.max_output_tokens}"
    wanted = needs.prompt_tokens + (needs.max_tokens or 0)
    if wanted > caps.context_window:
        return (
            f"prompt (~{needs.prompt_tokens} tokens) + max_tokens exceeds its "
            f"context window of {caps.context_window}"
        )
    adapter = get_adapter(entry.provider)
    try:
        for deployment in entry.deployments:
            adapter.check(request, deployment)
    except UnsupportedParameter as exc:
        return f"cannot honour {exc.param}: {exc.reason}"
    return None


def screen(
    chain: Sequence[str],
    portfolio: Mapping[str, ModelEntry],
    request: ChatRequest,
    needs: Needs,
) -> list[Candidate]:
    """Every model of ``chain`` in order, marked eligible or skipped with the reason."""
    out = []
    for name in chain:
        reason = _reason(portfolio[name], request, needs)
        out.append(Candidate(name, reason is None, reason))
    return out
