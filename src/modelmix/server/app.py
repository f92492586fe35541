"""The HTTP server: a Starlette app built around one ``Gateway`` (no globals).

A request's path: authenticate -> read and parse the body in the client's API format ->
engine (routing, upstream calls, ledger) -> render the answer in the client's format. Every
error the client can cause comes back in its own API's error JSON with the right status.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from modelmix.engine import EngineStream, finish_record
from modelmix.errors import GatewayError
from modelmix.gateway import Gateway, new_request_id
from modelmix.server import anthropic_api, openai_api
from modelmix.server.auth import Authenticator, presented_key
from modelmix.types import ChatRequest, ChatResponse, StreamDelta

log = logging.getLogger("modelmix.server")

JSON = "application/json"
TAG_HEADER_PREFIX = "x-modelmix-tag-"
#: An oversized body is drained up to this size before the 413 goes out.
_DRAIN_LIMIT = 64 * 1024 * 1024


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


OPENAI = ApiFormat(
    name="openai",
    parse=openai_api.parse_chat_request,
    render=openai_api.render_chat_response,
    stream_renderer=lambda rid, model, created, req: openai_api.ChatStreamRenderer(
        id="chatcmpl-" + rid, model=model, created=created, include_usage=req.include_usage
    ),
    render_error=openai_api.render_error,
)
ANTHROPIC = ApiFormat(
    name="anthropic",
    parse=anthropic_api.parse_messages_request,
    render=anthropic_api.render_message_response,
    stream_renderer=lambda rid, model, created, req: anthropic_api.MessageStreamRenderer(
        id="msg_" + rid, model=model
    ),
    render_error=anthropic_api.render_error,
)


def _error_response(fmt: ApiFormat, err: GatewayError, request_id: str | None = None) -> Response:
    status = err.status
    if fmt is ANTHROPIC and err.kind == "overloaded":
        status = 529  # Anthropic's own "overloaded" status, which its SDK maps to OverloadedError
    headers = {}
    if request_id:
        headers["x-modelmix-request-id"] = request_id
    if err.retry_after is not None:
        headers["retry-after"] = str(max(1, round(err.retry_after)))
    return Response(fmt.render_error(err), status_code=status, media_type=JSON, headers=headers)


def _format_for(request: Request) -> ApiFormat:
    path = request.url.path
    if path.startswith("/v1/messages") or "anthropic-version" in request.headers:
        return ANTHROPIC
    return OPENAI


async def _read_json(request: Request, limit: int) -> object:
    declared = request.headers.get("content-length")
    too_large = declared is not None and declared.isdigit() and int(declared) > limit
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            too_large = True
        if too_large:
            # Keep reading (and discarding) so the client gets the 413 instead of a reset
            # connection, but not forever.
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
    body = b"".join(chunks)
    if not body:
        raise GatewayError("invalid_request", "Request body is empty; expected JSON.")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(
            "invalid_request", f"Request body is not valid JSON: {exc}", code="invalid_json"
        ) from None


def _tags(request: Request) -> dict[str, str]:
    return {
        k[len(TAG_HEADER_PREFIX) :]: v
        for k, v in request.headers.items()
        if k.startswith(TAG_HEADER_PREFIX)
    }


def create_app(gateway: Gateway) -> Starlette:
    config = gateway.config
    admin_key = (
        gateway.env.get(config.server.admin_key_env) if config.server.admin_key_env else None
    )
    if config.server.admin_key_env and not admin_key:
        log.warning(
            "server.admin_key_env names %s, which is not set: no admin key",
            config.server.admin_key_env,
        )
    auth = Authenticator(admin_key, gateway.keys, config.server.require_api_key)
    max_body = config.server.max_body_bytes

    async def chat(request: Request, fmt: ApiFormat) -> Response:
        started = time.time()
        request_id = new_request_id()
        reached_engine = False
        record = None
        chat_request: ChatRequest | None = None
        try:
            key_id = auth.authenticate(request.headers)
            chat_request = fmt.parse(await _read_json(request, max_body))
            tags = _tags(request)
            if tags:
                chat_request.metadata.update(tags)
            record = gateway.new_record(
                fmt.name, chat_request, request_id=request_id, key_id=key_id, started_at=started
            )
            reached_engine = True
            if chat_request.stream:
                stream = await gateway.engine.stream(chat_request, record)
                return _stream_response(fmt, chat_request, stream, request_id)
            response = await gateway.engine.complete(chat_request, record)
            return _json_response(fmt, response, record.final_model or "", record, request_id)
        except GatewayError as err:
            if not reached_engine:
                record = gateway.new_record(
                    fmt.name, chat_request, request_id=request_id, started_at=started
                )
                finish_record(record, err)
                gateway.emit(record)
            return _error_response(fmt, err, request_id)
        except Exception:
            log.exception("internal error in request %s", request_id)
            internal = GatewayError("internal", f"Internal error (request {request_id}).")
            if not reached_engine or record is None:
                record = gateway.new_record(fmt.name, chat_request, request_id=request_id)
            finish_record(record, internal)
            gateway.emit(record)
            return _error_response(fmt, internal, request_id)

    async def chat_completions(request: Request) -> Response:
        return await chat(request, OPENAI)

    async def messages(request: Request) -> Response:
        return await chat(request, ANTHROPIC)

    async def models(request: Request) -> Response:
        fmt = _format_for(request)
        try:
            auth.authenticate(request.headers)
        except GatewayError as err:
            return _error_response(fmt, err)
        entries: list[tuple[str, str, str | None]] = [
            (name, "route", None)
            for name in gateway.router.routes  # type: ignore[union-attr]
        ]
        entries += [
            (m.name, m.owned_by, m.description)
            for m in gateway.portfolio.values()
            if m.unavailable is None
        ]
        if fmt is ANTHROPIC:
            data = [
                {
                    "type": "model",
                    "id": name,
                    "display_name": desc or name,
                    "created_at": "1970-01-01T00:00:00Z",
                }
                for name, _, desc in entries
            ]
            body: dict[str, Any] = {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        else:
            body = {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": owner}
                    for name, owner, _ in entries
                ],
            }
        return Response(orjson.dumps(body), media_type=JSON)

    async def metrics(request: Request) -> Response:
        if gateway.metrics is None:
            raise HTTPException(404, "metrics are disabled (metrics.enabled: false)")
        if config.metrics.require_admin_key and not auth.is_admin(presented_key(request.headers)):
            err = GatewayError("authentication", "/metrics needs the admin key.")
            return _error_response(OPENAI, err)
        body, content_type = gateway.metrics.exposition(request.headers.get("accept"))
        return Response(body, headers={"content-type": content_type})

    async def health(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    async def ready(request: Request) -> Response:
        problems = []
        if gateway.router is None:
            problems.append("not started")
        if gateway.ledger is not None and not gateway.ledger.alive:
            problems.append("ledger writer is not running")
        if not any(m.unavailable is None for m in gateway.portfolio.values()):
            problems.append("no model is available")
        if problems:
            body = orjson.dumps({"status": "not ready", "problems": problems})
            return Response(body, status_code=503, media_type=JSON)
        return Response(b'{"status":"ready"}', media_type=JSON)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = {404: "not_found", 405: "invalid_request"}.get(exc.status_code, "invalid_request")
        err = GatewayError(kind, f"{request.method} {request.url.path}: {exc.detail}")  # type: ignore[arg-type]
        response = _error_response(_format_for(request), err)
        response.status_code = exc.status_code
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.close()

    routes = [
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/models", models, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )


def _headers(record: Any, request_id: str) -> dict[str, str]:
    headers = {"x-modelmix-request-id": request_id}
    if record.final_model:
        headers["x-modelmix-model"] = record.final_model
    if record.route:
        headers["x-modelmix-route"] = record.route
    headers["x-modelmix-attempts"] = str(len(record.attempts))
    return headers


def _json_response(
    fmt: ApiFormat, response: ChatResponse, model: str, record: Any, request_id: str
) -> Response:
    headers = _headers(record, request_id)
    headers["x-modelmix-cost-usd"] = str(record.cost_usd)
    return Response(fmt.render(response, model=model), media_type=JSON, headers=headers)


def _stream_response(
    fmt: ApiFormat, request: ChatRequest, stream: EngineStream, request_id: str
) -> Response:
    renderer = fmt.stream_renderer(request_id, stream.model, int(time.time()), request)

    async def body() -> AsyncIterator[bytes]:
        async with contextlib.aclosing(stream.deltas()) as deltas:
            try:
                async for delta in deltas:
                    chunk = renderer.delta(delta)
                    if chunk:
                        yield chunk
                yield renderer.end()
            except GatewayError as err:
                yield renderer.error(err)

    headers = _headers(stream.record, request_id)
    headers["cache-control"] = "no-cache"
    return StreamingResponse(body(), media_type="text/event-stream", headers=headers)
