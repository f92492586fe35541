"""Client fields the canonical request does not carry, at whichever upstream serves it.

A client may send what the canonical (OpenAI-shaped) request cannot hold: fields modelmix does
not know (``ChatRequest.unknown``, a newer SDK's additions, vendor fields in ``extra_body``) and
features of its own format (``NativeRequest.features``: an Anthropic client's ``thinking``,
``context_management``, server tools...). What happens to them depends on the upstream:

* **Same wire format as the client** (an Anthropic client at an Anthropic model, an OpenAI
  client at an OpenAI-compatible one): everything goes through unchanged. Anthropic requests
  are sent as the client wrote them (``anthropic_messages.passthrough``), so thinking
  signatures, ``cache_control`` and betas reach the upstream byte for byte.
* **Another format**: each feature has its documented handling (``drop``: answered without
  it, noted on the ledger row; ``refuse``: that model is skipped with the reason, and the
  request refused with a 400 naming field and model when no model is left; ``reasoning``:
  ``thinking`` becomes a reasoning effort where the model takes one, else it is dropped and
  noted). Unknown fields follow the model's ``params.unknown``: ``refuse`` (the default: a
  400 naming the field's path and the model), ``drop`` (noted on the ledger row) or ``pass``
  (a top-level field is sent in the upstream's body as it is; a nested one, such as
  ``messages.1.content.0.foo``, has no place in another format's body and is refused).

One rule for top-level and nested fields: both are in ``ChatRequest.unknown`` by path, and an
upstream of the client's format gets each at the place the client put it
(``openai_chat/field_paths.py``).

``adapter_for`` wraps the model's adapter only for requests that carry such fields: the usual
request costs one attribute check.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from modelmix.errors import UnsupportedParameter, UpstreamError
from modelmix.providers.base import Deployment, HttpRequest, ProviderAdapter, StreamParser
from modelmix.types import ChatRequest, ChatResponse
from modelmix.wire.anthropic_messages import passthrough
from modelmix.wire.openai_chat.field_paths import insert_all, is_nested

__all__ = ["ExtendedAdapter", "adapter_for", "notes", "reasoning_effort"]

#: Anthropic ``thinking.budget_tokens`` -> the reasoning effort it maps to (first bound that
#: the budget stays under); adaptive thinking with no ``output_config.effort`` is ``medium``.
_EFFORT_BY_BUDGET = ((4_096, "low"), (16_384, "medium"))
_ADAPTIVE_EFFORT = "medium"


def same_format(request: ChatRequest, kind: str) -> bool:
    """The upstream ``kind`` speaks the client's own wire format."""
    native = request.native
    return native is not None and native.api == kind


def reasoning_effort(thinking: Any) -> str | None:
    """The reasoning effort an Anthropic ``thinking`` object asks for (None: disabled)."""
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "adaptive":
        return _ADAPTIVE_EFFORT
    if kind != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return _ADAPTIVE_EFFORT
    for bound, effort in _EFFORT_BY_BUDGET:
        if budget < bound:
            return effort
    return "high"


def _client_body(request: ChatRequest) -> dict[str, Any] | None:
    native = request.native
    return native.body if native is not None else None


def _unknown_refusal(request: ChatRequest, deployment: Deployment) -> UnsupportedParameter | None:
    unknown = request.unknown
    if not unknown:
        return None
    handling = deployment.capabilities.unknown_params
    if handling == "refuse":
        path = next(iter(unknown))
        return UnsupportedParameter(
            path,
            f"unknown field, not sent to {deployment.model} ({deployment.provider} wire "
            "format); set params.unknown: pass or drop on the model to allow it",
        )
    if handling == "pass":
        body = _client_body(request)
        for path in unknown:
            if is_nested(path, body):
                return UnsupportedParameter(
                    path,
                    f"unknown field inside the request, not sent to {deployment.model}: only "
                    f"an upstream speaking the client's wire format has a place for it "
                    f"({deployment.provider} wire format); params.unknown: drop allows it",
                )
    return None


def _check(request: ChatRequest, deployment: Deployment) -> None:
    native = request.native
    if native is not None:
        for name, (handling, why) in native.features.items():
            if handling == "refuse":
                raise UnsupportedParameter(name, f"{why} (needs an upstream speaking it)")
    refusal = _unknown_refusal(request, deployment)
    if refusal is not None:
        raise refusal


def notes(request: ChatRequest, deployment: Deployment) -> dict[str, str] | None:
    """What a call to ``deployment`` answers without (feature or field -> why), for the
    ledger row; None when nothing is left out."""
    if same_format(request, deployment.provider):
        return None
    out: dict[str, str] = {}
    native = request.native
    if native is not None:
        for name, (handling, why) in native.features.items():
            if handling == "drop" or (
                handling == "reasoning" and not deployment.capabilities.reasoning
            ):
                out[name] = why
    if request.unknown and deployment.capabilities.unknown_params == "drop":
        for path in request.unknown:
            out[path] = "unknown field dropped (params.unknown: drop)"
    return out or None


def _translated(request: ChatRequest, deployment: Deployment) -> ChatRequest:
    """The canonical request this deployment gets: ``thinking`` as a reasoning effort where
    the model takes one (and the client set none)."""
    native = request.native
    if (
        native is None
        or "thinking" not in native.features
        or not deployment.capabilities.reasoning
        or "reasoning_effort" in request.params
    ):
        return request
    effort = reasoning_effort(native.body.get("thinking"))
    if effort is None:
        return request
    return dataclasses.replace(request, params={**request.params, "reasoning_effort": effort})


class ExtendedAdapter:
    """One model's adapter for one request that carries fields the canonical one cannot."""

    __slots__ = ("inner", "kind", "request")

    def __init__(self, inner: ProviderAdapter, request: ChatRequest) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.request = request

    def check(self, request: ChatRequest, deployment: Deployment) -> None:
        if same_format(request, self.kind):
            if self.kind != "anthropic":
                self.inner.check(request, deployment)
            return  # the upstream judges its own format
        _check(request, deployment)
        self.inner.check(_translated(request, deployment), deployment)

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest:
        same = same_format(request, self.kind)
        if same and self.kind == "anthropic":
            return passthrough.build_request(request, deployment)
        if not same:
            _check(request, deployment)
        http = self.inner.build_request(_translated(request, deployment), deployment)
        unknown = request.unknown
        if same and request.responses is not None:
            return http  # a Responses upstream gets the client's own body: they are in it
        if unknown and (same or deployment.capabilities.unknown_params == "pass"):
            body = orjson.loads(http.body)
            missed = insert_all(body, unknown, _client_body(request) or {})
            if missed:  # the upstream's body lost the client's shape: never silently
                raise UnsupportedParameter(
                    missed[0], f"unknown field with no place in {deployment.model}'s request"
                )
            http.body = orjson.dumps(body)
        return http

    def parse_response(self, body: bytes) -> ChatResponse:
        response = self.inner.parse_response(body)
        if same_format(self.request, self.kind) and self.kind == "anthropic":
            response.raw = orjson.loads(body)
        return response

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return self.inner.parse_error(status, body, headers)

    def stream_parser(self) -> StreamParser:
        parser = self.inner.stream_parser()
        if same_format(self.request, self.kind) and self.kind == "anthropic":
            return passthrough.RawStreamParser(parser)
        return parser


def adapter_for(adapter: ProviderAdapter, request: ChatRequest) -> ProviderAdapter:
    """``adapter`` itself, or wrapped when ``request`` carries fields beyond the canonical."""
    if request.native is None and request.unknown is None:
        return adapter
    return ExtendedAdapter(adapter, request)
