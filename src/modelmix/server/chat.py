"""The chat endpoints (``POST /v1/chat/completions``, ``POST /v1/messages``,
``POST /v1/responses``) as plain ASGI.

These routes carry all the traffic, so they skip the framework: the body is read straight
from ``receive`` and the answer written straight to ``send`` (a streamed answer without a task
group per response). A request's path, in order: authenticate -> read and parse the body in the
client's API format -> ``Gateway.run``, the one request lifecycle (ledger record, admission:
budgets/accounting.py, engine: routing, upstream calls, ledger) -> render the answer in the
client's format. A request refused before ``run`` (bad key, bad body) is recorded with
``Gateway.refuse``. Every error the
client can cause comes back in its own API's error JSON with the right status; a bug comes back
as a 500 in that format, logged with its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from modelmix.cache.request_key import HEADER as CACHE_HEADER
from modelmix.engine import EngineStream
from modelmix.errors import GatewayError
from modelmix.gateway import Gateway, new_request_id
from modelmix.ledger.records import RequestRecord
from modelmix.server.auth import Authenticator
from modelmix.server.formats import ANTHROPIC, COMPLETIONS, OPENAI, RESPONSES, ApiFormat
from modelmix.server.limits import RequestLimits  # issue 14: bounded inputs
from modelmix.server.origin import CrossSiteGuard  # issue 14: keyless cross-site requests
from modelmix.server.shutdown import StreamRegistry  # issue 14: shutdown deadline
from modelmix.types import ChatRequest

log = logging.getLogger("modelmix.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CHAT_PATHS: dict[str, ApiFormat] = {
    "/v1/chat/completions": OPENAI,
    "/chat/completions": OPENAI,
    "/v1/messages": ANTHROPIC,
    "/v1/completions": COMPLETIONS,  # issue 12: legacy completions
    "/completions": COMPLETIONS,
    "/v1/responses": RESPONSES,  # issue 12: the Responses API
    "/responses": RESPONSES,
}
TAG_HEADER_PREFIX = "x-modelmix-tag-"
#: An oversized body is drained up to this size before the 413 goes out, so the client reads
#: the error instead of a reset connection.
_DRAIN_LIMIT = 64 * 1024 * 1024
_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


def _stop_watching(hangup: asyncio.Future[Message] | None) -> None:
    if hangup is not None:
        hangup.cancel()


def _headers_of(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def _read_json(receive: Receive, headers: dict[str, str], limit: int) -> object:
    declared = headers.get("content-length")
    too_large = declared is not None and declared.isdigit() and int(declared) > limit
    chunks = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise GatewayError("invalid_request", "The client disconnected mid-request.")
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        size += len(chunk)
        if size > limit:
            too_large = True
        if too_large:
            if size > _DRAIN_LIMIT:
                break
            continue
        chunks.append(chunk)
    if too_large:
        raise GatewayError(
            "request_too_large",
            f"Request body exceeds the limit of {limit} bytes.",
            code="request_too_large",
        )
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    if not body:
        raise GatewayError("invalid_request", "Request body is empty; expected JSON.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(
            "invalid_request", f"Request body is not valid JSON: {exc}", code="invalid_json"
        ) from None


def _answer_headers(
    record: RequestRecord, request_id: str, fmt: ApiFormat
) -> list[tuple[bytes, bytes]]:
    rid = request_id.encode()
    headers = [(b"x-modelmix-request-id", rid), (fmt.request_id_header, rid)]
    if record.final_model:
        headers.append((b"x-modelmix-model", record.final_model.encode()))
    if record.route:
        headers.append((b"x-modelmix-route", record.route.encode()))
    headers.append((b"x-modelmix-attempts", str(len(record.attempts)).encode()))
    return headers


async def send_error(
    send: Send,
    fmt: ApiFormat,
    err: GatewayError,
    request_id: str | None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [
        (k.encode(), v.encode("latin-1", "replace"))
        for k, v in fmt.error_headers(err, request_id).items()
    ]
    if extra:
        have = {k for k, _ in headers}
        headers += [(k, v) for k, v in extra if k not in have]
    await send(
        {
            "type": "http.response.start",
            "status": fmt.error_status(err),
            "headers": _JSON_HEADERS + headers,
        }
    )
    await send({"type": "http.response.body", "body": fmt.render_error(err)})


class ChatEndpoint:
    """Serves the chat APIs for one gateway."""

    def __init__(self, gateway: Gateway, auth: Authenticator) -> None:
        self.gateway = gateway
        self.auth = auth
        self.max_body = gateway.config.server.max_body_bytes
        self.limits = RequestLimits(gateway.config.server.limits)
        self.cross_site = CrossSiteGuard(gateway.config.server.allowed_origins)
        #: open streams, ended with an error at the shutdown deadline (server/shutdown.py)
        self.streams = StreamRegistry()

    async def __call__(self, scope: Scope, receive: Receive, send: Send, fmt: ApiFormat) -> None:
        """Parse, run (``Gateway.run``: the one request lifecycle), render."""
        gateway = self.gateway
        started = time.time()
        request_id = new_request_id()
        chat: ChatRequest | None = None
        try:
            headers = _headers_of(scope)
            key_id = self.auth.authenticate(headers)
            if key_id is None:
                self.cross_site.check(headers)
            chat = fmt.parse(await _read_json(receive, headers, self.max_body))
            if chat.native is not None:  # issue 12: a same-format upstream gets the betas
                chat.native.headers = headers
            if fmt.prepare is not None:  # Responses API: the stored conversation
                chat = fmt.prepare(gateway, chat, key_id)
            for name, value in headers.items():
                if name.startswith(TAG_HEADER_PREFIX):
                    chat.metadata[name[len(TAG_HEADER_PREFIX) :]] = value
            self.limits.check(chat)
            answer = await gateway.run(
                chat,
                api=fmt.name,
                key_id=key_id,
                request_id=request_id,
                started_at=started,
                cache=headers.get(CACHE_HEADER, ""),  # response cache: HTTP requests only
            )
            if isinstance(answer, EngineStream):
                self.streams.add(answer)  # the shutdown deadline can end it (issue 14)
                try:
                    admission = answer.admission
                    more = admission.headers() if admission is not None else []
                    await self._send_stream(receive, send, fmt, chat, answer, request_id, more)
                finally:
                    self.streams.discard(answer)
                    gateway.accounting.abandon(answer.record)  # no-op unless never read
                return
        except GatewayError as err:
            if err.record is None:  # refused before the lifecycle took it (key, body)
                gateway.refuse(fmt.name, chat, err, request_id=request_id, started_at=started)
            extra = err.admission.headers() if err.admission is not None else None
            await send_error(send, fmt, err, request_id, extra)
            return
        except Exception:
            log.exception("internal error in request %s", request_id)
            internal = GatewayError("internal", f"Internal error (request {request_id}).")
            gateway.refuse(fmt.name, chat, internal, request_id=request_id, started_at=started)
            await send_error(send, fmt, internal, request_id)
            return
        record = answer.record
        body = fmt.render(answer.response, record.final_model or "", chat, request_id)
        answer_headers = _answer_headers(record, request_id, fmt)
        if not record.unpriced:  # no cost header rather than a wrong one
            answer_headers.append((b"x-modelmix-cost-usd", str(record.cost_usd).encode()))
        answer_headers += answer.admission.headers()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": _JSON_HEADERS + answer_headers,
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _send_stream(
        self,
        receive: Receive,
        send: Send,
        fmt: ApiFormat,
        chat: ChatRequest,
        stream: EngineStream,
        request_id: str,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> None:
        renderer = fmt.stream_renderer(request_id, stream.model, int(time.time()), chat)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": _SSE_HEADERS
                + _answer_headers(stream.record, request_id, fmt)
                + extra_headers,
            }
        )
        # The request body has been read: the next message from the server is the client
        # hanging up. Watching for it lets a long stream stop paying for tokens nobody reads;
        # the watcher starts with the second batch (most short answers come in one).
        hangup: asyncio.Future[Message] | None = None
        first = True
        last = b""
        # One send per batch: the deltas that arrived in one upstream read go out in one write.
        async with contextlib.aclosing(stream.batches()) as batches:
            try:
                async for batch in batches:
                    if first:
                        first = False
                    elif hangup is None:
                        hangup = asyncio.ensure_future(receive())
                    elif hangup.done():
                        break
                    if len(batch) == 1:
                        chunk = renderer.delta(batch[0])
                    else:
                        chunk = b"".join([renderer.delta(delta) for delta in batch])
                    if stream.at_end:  # the last batch: it goes out with the end, in one write
                        last = chunk
                    elif chunk:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                else:
                    await send({"type": "http.response.body", "body": last + renderer.end()})
                    _stop_watching(hangup)
                    return
            except GatewayError as err:
                await send({"type": "http.response.body", "body": renderer.error(err)})
                _stop_watching(hangup)
                return
        _stop_watching(hangup)
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b""})
