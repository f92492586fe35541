"""Capability filter: which models of a chain can serve a request, and why the others cannot.

A model lacking something the request needs is skipped with a reason, never sent a request it
would mangle: no parameter is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modelmix.errors import GatewayError, UnsupportedParameter
from modelmix.portfolio import ModelEntry
from modelmix.providers.registry import get_adapter
from modelmix.routing.needs import Needs
from modelmix.types import ChatRequest
from modelmix.wire.extensions import adapter_for

UNAVAILABLE = "unavailable"


@dataclass(slots=True, frozen=True)
class Candidate:
    model: str
    eligible: bool
    reason: str | None = None
    #: Skipped because it cannot be called at all (e.g. its key is not set), not for the request.
    unavailable: bool = False

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"model": self.model, "eligible": self.eligible}
        if self.reason:
            out["reason"] = self.reason
        return out


def _reason(entry: ModelEntry, request: ChatRequest, needs: Needs) -> str | None:
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
    if entry.unavailable:  # after what the request needs: that is the client's to fix
        return f"{UNAVAILABLE}: {entry.unavailable}"
    adapter = adapter_for(get_adapter(entry.provider), request)  # issue 12: extra fields
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
        unavailable = reason is not None and reason.startswith(UNAVAILABLE)
        out.append(Candidate(name, reason is None, reason, unavailable))
    return out


def no_candidate_error(route: str, candidates: Sequence[Candidate]) -> GatewayError:
    """The error when no model of ``route`` can serve: a 503 when one would, were it callable
    (a key not set), else a 400; either way naming each model and why it was skipped."""
    reasons = "; ".join(f"{c.model}: {c.reason}" for c in candidates)
    if any(c.unavailable for c in candidates):
        return GatewayError(
            "unavailable",
            f"No model of {route!r} can be called for this request ({reasons}).",
            param="model",
            code="model_unavailable",
        )
    return GatewayError(
        "invalid_request",
        f"No model of {route!r} can serve this request ({reasons}).",
        param="model",
        code="no_capable_model",
    )
