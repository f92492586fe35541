"""Anthropic client at an Anthropic upstream: the request goes as the client wrote it.

Only ``model`` is replaced (the upstream's model id; ``stream`` follows the call); thinking
blocks and their signatures, ``cache_control`` breakpoints, ``context_management``, server
tools, ``document`` blocks and fields modelmix does not know reach the upstream unchanged, with
the client's ``anthropic-beta`` header. The answer comes back the same way:
``RawStreamParser`` keeps each upstream event's bytes on its delta (``StreamDelta.raw``) for the
client's renderer, and still reads the canonical fields (text, tool calls, usage) for the
ledger, budgets and the quality loop. Pure, no I/O.
"""

from __future__ import annotations

import orjson

from modelmix.providers.base import Deployment, HttpRequest, SSEEvent, StreamParser
from modelmix.types import ChatRequest, StreamDelta
from modelmix.wire.anthropic_messages.upstream import API_VERSION

__all__ = ["FORWARDED_HEADERS", "RawStreamParser", "build_request", "upstream_headers"]

#: Client headers an Anthropic upstream gets as they are.
FORWARDED_HEADERS = ("anthropic-beta", "anthropic-version")


def upstream_headers(client: dict[str, str], deployment: Deployment) -> dict[str, str]:
    """The headers of a passthrough call: the client's betas and version, the model's key."""
    headers = {"Content-Type": "application/json", "anthropic-version": API_VERSION}
    for name in FORWARDED_HEADERS:
        value = client.get(name)
        if value:
            headers[name] = value
    if deployment.api_key:
        headers["x-api-key"] = deployment.api_key
    if deployment.headers:
        headers.update(deployment.headers)
    return headers


def build_request(
    request: ChatRequest, deployment: Deployment, path: str = "/messages"
) -> HttpRequest:
    """The client's body at the upstream, ``model`` swapped for the upstream's id."""
    native = request.native
    assert native is not None
    body = dict(native.body)
    body["model"] = deployment.upstream_model
    if "stream" in body or request.stream:  # as the call wants it (a shadow call does not stream)
        body["stream"] = request.stream
    return HttpRequest(
        method="POST",
        url=deployment.base_url + path,
        headers=upstream_headers(native.headers, deployment),
        body=orjson.dumps(body),
    )


def _frame(event: SSEEvent) -> bytes:
    name = event.event
    head = b"event: " + name.encode() + b"\n" if name else b""
    return head + b"data: " + event.data.encode() + b"\n\n"


class RawStreamParser:
    """The Anthropic stream parser, with every event's own bytes kept on a delta."""

    __slots__ = ("_inner",)

    def __init__(self, inner: StreamParser) -> None:
        self._inner = inner

    def finished(self) -> bool:
        return self._inner.finished()

    def feed(self, event: SSEEvent) -> list[StreamDelta]:
        deltas = self._inner.feed(event)
        raw = _frame(event)
        if not deltas:
            return [StreamDelta(raw=raw)]
        deltas[0].raw = raw
        for extra in deltas[1:]:
            extra.raw = b""
        return deltas
