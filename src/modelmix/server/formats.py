"""The client-facing APIs as values: which codec (``modelmix.wire.<format>``) reads a request
and writes an answer, and the HTTP details (status, headers) the ASGI layer adds.

A format whose requests continue a stored conversation (the Responses API) also has a
``prepare`` step after parsing; its ``render`` stores the answer (``server/responses.py``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from modelmix.errors import GatewayError
from modelmix.server import responses
from modelmix.types import ChatRequest, ChatResponse, StreamDelta
from modelmix.wire.anthropic_messages import client as anthropic_api
from modelmix.wire.openai_chat import client as openai_api
from modelmix.wire.openai_chat import completions as completions_api
from modelmix.wire.openai_responses.request import parse_responses_request

if TYPE_CHECKING:
    from modelmix.gateway import Gateway


class StreamRenderer(Protocol):
    """What the APIs' stream renderers offer (see wire/*/client.py, wire/openai_responses)."""

    def delta(self, d: StreamDelta) -> bytes: ...
    def end(self) -> bytes: ...
    def error(self, err: GatewayError) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ApiFormat:
    """One client-facing API: how to read its requests and write its answers."""

    name: str
    parse: Callable[[object], ChatRequest]
    #: ``render(response, model, request, request_id)``: the answer's body.
    render: Callable[[ChatResponse, str, ChatRequest, str], bytes]
    stream_renderer: Callable[[str, str, int, ChatRequest], StreamRenderer]
    render_error: Callable[[GatewayError], bytes]
    #: The header this API's SDKs read the request id from (``_request_id`` in both SDKs).
    request_id_header: bytes
    #: ``prepare(gateway, request, key_id)``, after ``parse``: the complete request, for a
    #: format whose requests continue a stored conversation (the Responses API).
    prepare: Callable[[Gateway, ChatRequest, str | None], ChatRequest] | None = None

    def error_status(self, err: GatewayError) -> int:
        if self.name == "anthropic" and err.kind == "overloaded":
            return 529  # Anthropic's own "overloaded" status; its SDK maps it to OverloadedError
        return err.status

    def error_headers(self, err: GatewayError, request_id: str | None = None) -> dict[str, str]:
        """Headers for an error response: the request ids, ``retry-after``, and whatever the
        error carries itself (a budget refusal's ``x-should-retry: false`` and
        ``x-modelmix-budget``, a rate limit's ``x-ratelimit-*``): the SDKs read them to decide
        whether to retry."""
        headers: dict[str, str] = {}
        if request_id:
            headers["x-modelmix-request-id"] = request_id
            headers[self.request_id_header.decode()] = request_id
        if err.retry_after is not None:
            headers["retry-after"] = str(max(1, math.ceil(err.retry_after)))
        carried: dict[str, str] | None = getattr(err, "headers", None)
        if carried:
            headers.update(carried)
        return headers


OPENAI = ApiFormat(
    name="openai",
    parse=openai_api.parse_chat_request,
    render=lambda resp, model, req, rid: openai_api.render_chat_response(resp, model=model),
    stream_renderer=lambda rid, model, created, req: openai_api.ChatStreamRenderer(
        id="chatcmpl-" + rid, model=model, created=created, include_usage=req.include_usage
    ),
    render_error=openai_api.render_error,
    request_id_header=b"x-request-id",
)
ANTHROPIC = ApiFormat(
    name="anthropic",
    parse=anthropic_api.parse_messages_request,
    render=lambda resp, model, req, rid: anthropic_api.render_message_response(resp, model=model),
    stream_renderer=lambda rid, model, created, req: anthropic_api.MessageStreamRenderer(
        id="msg_" + rid, model=model
    ),
    render_error=anthropic_api.render_error,
    request_id_header=b"request-id",
)

#: issue 12: the legacy ``/v1/completions``, served by chat upstreams (errors: OpenAI's shape).
COMPLETIONS = ApiFormat(
    name="completions",
    parse=completions_api.parse_completion_request,
    render=lambda resp, model, req, rid: completions_api.render_completion_response(
        resp, model=model
    ),
    stream_renderer=lambda rid, model, created, req: completions_api.CompletionStreamRenderer(
        id=rid, model=model, created=created, include_usage=req.include_usage
    ),
    render_error=openai_api.render_error,
    request_id_header=b"x-request-id",
)

RESPONSES = ApiFormat(
    name="responses",
    parse=parse_responses_request,
    render=responses.render,
    stream_renderer=responses.stream_renderer,
    render_error=openai_api.render_error,  # errors in OpenAI's format
    request_id_header=b"x-request-id",
    prepare=responses.prepare,
)
