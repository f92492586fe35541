"""The client-facing APIs as values: how to read a request and write an answer."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from modelmix.errors import GatewayError
from modelmix.server import anthropic_api, openai_api
from modelmix.types import ChatRequest, StreamDelta
from modelmix.wire.openai_responses import endpoint as responses_endpoint
from modelmix.wire.openai_responses.request import parse_responses_request


class StreamRenderer(Protocol):
    """What both APIs' stream renderers offer (see server/openai_api.py, anthropic_api.py)."""

    def delta(self, d: StreamDelta) -> bytes: ...
    def end(self) -> bytes: ...
    def error(self, err: GatewayError) -> bytes: ...


@dataclass(frozen=True, slots=True)
class ApiFormat:
    """One client-facing API: how to read its requests and write its answers."""

    name: str
    parse: Callable[[object], ChatRequest]
    render: Callable[..., bytes]
    stream_renderer: Callable[[str, str, int, ChatRequest], StreamRenderer]
    render_error: Callable[[GatewayError], bytes]
    #: The header this API's SDKs read the request id from (``_request_id`` in both SDKs).
    request_id_header: bytes
    #: Formats whose canonical request needs the gateway (the Responses API's stored
    #: conversations): ``prepare(gateway, chat, key_id)`` returns the complete request.
    prepare: Callable[[Any, ChatRequest, str | None], ChatRequest] | None = None
    #: Formats whose answer needs the request: ``answer(response, model, chat, request_id)``
    #: replaces ``render``.
    answer: Callable[..., bytes] | None = None

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
    render=openai_api.render_chat_response,
    stream_renderer=lambda rid, model, created, req: openai_api.ChatStreamRenderer(
        id="chatcmpl-" + rid, model=model, created=created, include_usage=req.include_usage
    ),
    render_error=openai_api.render_error,
    request_id_header=b"x-request-id",
)
ANTHROPIC = ApiFormat(
    name="anthropic",
    parse=anthropic_api.parse_messages_request,
    render=anthropic_api.render_message_response,
    stream_renderer=lambda rid, model, created, req: anthropic_api.MessageStreamRenderer(
        id="msg_" + rid, model=model
    ),
    render_error=anthropic_api.render_error,
    request_id_header=b"request-id",
)
# --- Responses API (issue 12): wire/openai_responses; errors in OpenAI's format
RESPONSES = ApiFormat(
    name="responses",
    parse=parse_responses_request,
    render=openai_api.render_chat_response,  # unused: ``answer`` renders Responses answers
    stream_renderer=responses_endpoint.stream_renderer,
    render_error=openai_api.render_error,
    request_id_header=b"x-request-id",
    prepare=responses_endpoint.prepare,
    answer=responses_endpoint.answer,
)
