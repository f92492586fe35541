"""The HTTP server: one ASGI app built around one ``Gateway`` (no globals).

The chat endpoints are plain ASGI (server/chat.py: the hot path); everything else (models,
health, readiness, metrics, the admin API at ``/admin/...`` and the dashboard at ``/ui``, both
behind the admin key) is a small Starlette app behind them.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelmix.dashboard.routes import dashboard_routes
from modelmix.errors import GatewayError
from modelmix.gateway import Gateway
from modelmix.server.admin import admin_routes
from modelmix.server.auth import DEFAULT_ADMIN_KEY_ENV, Authenticator, presented_key
from modelmix.server.chat import CHAT_PATHS, ChatEndpoint, Receive, Scope, Send
from modelmix.server.count_tokens import count_tokens_routes
from modelmix.server.embeddings import EMBEDDING_PATHS, EmbeddingsEndpoint
from modelmix.server.feedback import feedback_routes
from modelmix.server.formats import ANTHROPIC, OPENAI, ApiFormat
from modelmix.server.responses import responses_routes

log = logging.getLogger("modelmix.server")

JSON = "application/json"


def _error_response(fmt: ApiFormat, err: GatewayError) -> Response:
    return Response(
        fmt.render_error(err),
        status_code=fmt.error_status(err),
        media_type=JSON,
        headers=fmt.error_headers(err),
    )


def not_implemented(method: str, path: str, routes: list[Any]) -> GatewayError:
    """The 404 for a path no route serves: its code says the endpoint is not implemented (not
    that a model is missing), and the message lists the API endpoints that are."""
    served = sorted(
        f"{'/'.join(sorted(r.methods - {'HEAD'}))} {r.path}"
        for r in routes
        if isinstance(r, Route) and r.path.startswith("/v1/") and r.methods
    )
    return GatewayError(
        "not_found",
        f"{method} {path} is not implemented by modelmix. Implemented endpoints: "
        + ", ".join(served),
        code="endpoint_not_implemented",
    )


def _format_for(request: Request) -> ApiFormat:
    path = request.url.path
    if path.startswith("/v1/messages") or "anthropic-version" in request.headers:
        return ANTHROPIC
    return OPENAI


class GatewayApp:
    """The ASGI entry point: chat requests go straight to ``ChatEndpoint``, the rest to
    Starlette (which also runs the lifespan: gateway start and graceful stop)."""

    def __init__(
        self, chat: ChatEndpoint, rest: Starlette, embeddings: EmbeddingsEndpoint | None = None
    ) -> None:
        self.chat = chat
        self.rest = rest
        self.embeddings = embeddings  # issue 12: POST /v1/embeddings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            fmt = CHAT_PATHS.get(scope["path"])
            if fmt is not None:
                await self.chat(scope, receive, send, fmt)
                return
            if self.embeddings is not None and scope["path"] in EMBEDDING_PATHS:
                await self.embeddings(scope, receive, send)
                return
        await self.rest(scope, receive, send)


class _ChatRoute:
    """One chat path as a Starlette (ASGI) endpoint."""

    def __init__(self, chat: ChatEndpoint, fmt: ApiFormat) -> None:
        self.chat = chat
        self.fmt = fmt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.chat(scope, receive, send, self.fmt)


def create_app(gateway: Gateway) -> GatewayApp:
    config = gateway.config
    # issue 12: with no server.admin_key_env, $MODELMIX_ADMIN_KEY alone turns keys on
    admin_key = gateway.env.get(config.server.admin_key_env or DEFAULT_ADMIN_KEY_ENV) or None
    if config.server.admin_key_env and not admin_key:
        log.warning(
            "server.admin_key_env names %s, which is not set: no admin key",
            config.server.admin_key_env,
        )
    auth = Authenticator(admin_key, gateway.keys, config.server.require_api_key)
    metrics_need_admin = config.metrics.require_admin_key
    if metrics_need_admin is None:
        metrics_need_admin = admin_key is not None

    def catalog() -> dict[str, tuple[str, str | None]]:
        """What /v1/models lists: routes, then callable models; name -> (owner, description)."""
        entries: dict[str, tuple[str, str | None]] = {
            name: ("route", None)
            for name in gateway.router.routes  # type: ignore[union-attr]
        }
        for m in gateway.portfolio.values():
            if m.unavailable is None:
                entries[m.name] = (m.owned_by, m.description)
        return entries

    def model_object(fmt: ApiFormat, name: str, owner: str, desc: str | None) -> dict[str, Any]:
        if fmt is ANTHROPIC:
            return {
                "type": "model",
                "id": name,
                "display_name": desc or name,
                "created_at": "1970-01-01T00:00:00Z",
            }
        return {"id": name, "object": "model", "created": 0, "owned_by": owner}

    async def models(request: Request) -> Response:
        fmt = _format_for(request)
        try:
            auth.authenticate(request.headers)
        except GatewayError as err:
            return _error_response(fmt, err)
        data = [model_object(fmt, name, *info) for name, info in catalog().items()]
        body: dict[str, Any]
        if fmt is ANTHROPIC:
            body = {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
        else:
            body = {"object": "list", "data": data}
        return Response(orjson.dumps(body), media_type=JSON)

    async def model(request: Request) -> Response:
        fmt = _format_for(request)
        try:
            auth.authenticate(request.headers)
        except GatewayError as err:
            return _error_response(fmt, err)
        name = request.path_params["model_id"]
        info = catalog().get(name)
        if info is None:
            missing = GatewayError(
                "not_found",
                f"The model {name!r} does not exist.",
                param="model",
                code="model_not_found",
            )
            return _error_response(fmt, missing)
        return Response(orjson.dumps(model_object(fmt, name, *info)), media_type=JSON)

    async def metrics(request: Request) -> Response:
        if gateway.metrics is None:
            raise HTTPException(404, "metrics are disabled (metrics.enabled: false)")
        if metrics_need_admin and not auth.is_admin(presented_key(request.headers)):
            err = GatewayError("authentication", "/metrics needs the admin key.")
            return _error_response(OPENAI, err)
        # budget gauges are read from the (shared) counters at scrape time: always current
        await run_in_threadpool(gateway.accounting.refresh_metrics, gateway.metrics)
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
        if gateway.accounting.link is not None:  # shared state (state/link.py)
            problems += await run_in_threadpool(gateway.accounting.link.problems)
        if problems:
            body = orjson.dumps({"status": "not ready", "problems": problems})
            return Response(body, status_code=503, media_type=JSON)
        return Response(b'{"status":"ready"}', media_type=JSON)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "invalid_request")
        err = GatewayError(kind, f"{request.method} {request.url.path}: {exc.detail}")  # type: ignore[arg-type]
        if exc.status_code == 404 and exc.detail == "Not Found":  # no route: issue 12
            err = not_implemented(request.method, request.url.path, routes)
        response = _error_response(_format_for(request), err)
        response.status_code = exc.status_code
        response.headers.update(exc.headers or {})  # Allow, on a 405
        return response

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        # What start-up built (portfolio, router weights, tokenizer, caches) lives as long as
        # the server: keep it out of the cyclic collector's full passes, which would otherwise
        # walk it again and again and show up as latency spikes.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await gateway.close()

    chat = ChatEndpoint(gateway, auth)
    embeddings = EmbeddingsEndpoint(gateway, auth)
    routes = [
        # GatewayApp serves these POSTs before Starlette sees them; as routes, any other
        # method gets a 405 rather than a 404.
        *(Route(path, _ChatRoute(chat, fmt), methods=["POST"]) for path, fmt in CHAT_PATHS.items()),
        *(Route(path, embeddings, methods=["POST"]) for path in EMBEDDING_PATHS),  # issue 12
        Route("/v1/models", models, methods=["GET"]),
        Route("/models", models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", model, methods=["GET"]),
        Route("/models/{model_id:path}", model, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/ready", ready, methods=["GET"]),
        *admin_routes(gateway.keys, auth, gateway.accounting, admin_enabled=admin_key is not None),
        *dashboard_routes(gateway, auth),
        *feedback_routes(gateway, auth),
        *count_tokens_routes(gateway, auth),  # issue 12
        *responses_routes(gateway, auth),  # issue 12: GET/DELETE /v1/responses/{id}
    ]
    rest = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error},
    )
    return GatewayApp(chat, rest, embeddings)
