"""``POST /v1/messages/count_tokens``: how many input tokens a Messages request holds.

The count is for the model that would serve the request (a route's first choice, as its
strategy plans it). When that model speaks Anthropic's format, the upstream counts it (the
client's body, as it is, at ``{base_url}/messages/count_tokens``): exact. Otherwise the gateway
estimates it (cl100k tokens of the prompt, as ``estimate.py`` counts), and says so: the body
carries ``"estimated": true`` and the ``x-modelmix-tokens-estimated: true`` header. Counting is
free: each call is a ledger row with no tokens and no cost, whose ``decision["count_tokens"]``
holds the count, the model and whether it is exact.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from modelmix.engine import finish_record, to_gateway_error
from modelmix.errors import GatewayError, UpstreamError
from modelmix.estimated_usage import estimate_usage
from modelmix.gateway import Gateway, new_request_id
from modelmix.ledger.records import AttemptRecord, RequestRecord
from modelmix.providers.base import Deployment, HttpRequest
from modelmix.routing.needs import needs_of
from modelmix.server.auth import Authenticator
from modelmix.server.formats import ANTHROPIC
from modelmix.types import ChatRequest, ChatResponse
from modelmix.wire.anthropic_messages import passthrough
from modelmix.wire.anthropic_messages.client import parse_messages_request
from modelmix.wire.anthropic_messages.upstream import ADAPTER as ANTHROPIC_ADAPTER

__all__ = ["COUNT_TOKENS_PATH", "count_tokens_routes"]

COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
_JSON = "application/json"


class _CountAdapter:
    """The Anthropic adapter's I/O contract for one count_tokens call (the client's body)."""

    kind = "anthropic"

    def check(self, request: ChatRequest, deployment: Deployment) -> None:
        return None

    def build_request(self, request: ChatRequest, deployment: Deployment) -> HttpRequest:
        return passthrough.build_request(request, deployment, "/messages/count_tokens")

    def parse_response(self, body: bytes) -> ChatResponse:
        data = orjson.loads(body)
        if not isinstance(data, dict) or not isinstance(data.get("input_tokens"), int):
            raise UpstreamError("bad_response", "count_tokens answer without input_tokens")
        return ChatResponse(id="", model="", content=None, raw=data)

    def parse_error(self, status: int, body: bytes, headers: dict[str, str]) -> UpstreamError:
        return ANTHROPIC_ADAPTER.parse_error(status, body, headers)

    def stream_parser(self) -> Any:
        raise NotImplementedError("count_tokens does not stream")


_COUNTER = _CountAdapter()


def _first_model(gateway: Gateway, request: ChatRequest, record: RequestRecord) -> str:
    """The model a Messages call with this body would try first."""
    assert gateway.router is not None
    strategy, route = gateway.router.resolve(request.model)
    record.route = route
    plan = strategy.plan(request, needs_of(request), record.decision)
    try:
        return next(plan).model
    finally:
        plan.close()


async def _exact(
    gateway: Gateway, request: ChatRequest, model: str, record: RequestRecord
) -> dict[str, Any]:
    entry = gateway.portfolio[model]
    dep = entry.deployments[0]
    attempt = AttemptRecord(
        request_id=record.id,
        seq=0,
        model=model,
        deployment=dep.id,
        provider=dep.provider,
        upstream_model=dep.upstream_model,
        started_at=time.time(),
    )
    record.attempts.append(attempt)
    try:
        engine = gateway.engine
        answer = await engine.client.complete(_COUNTER, dep, request, engine.timeouts)
    except UpstreamError as err:
        attempt.status, attempt.error_kind, attempt.error = "error", err.kind, err.message[:500]
        raise to_gateway_error(err, model) from None
    finally:
        attempt.latency_ms = (time.time() - attempt.started_at) * 1000.0
    attempt.http_status = 200
    attempt.cost_usd, attempt.price_source = Decimal(0), "count_tokens is not billed"
    assert answer.raw is not None
    return answer.raw


async def count(gateway: Gateway, request: ChatRequest, record: RequestRecord) -> dict[str, Any]:
    """The count_tokens answer for ``request`` (the record says how it was made)."""
    model = _first_model(gateway, request, record)
    record.final_model = model
    exact = gateway.portfolio[model].provider == "anthropic"
    if exact:
        body = await _exact(gateway, request, model, record)
    else:
        estimate = estimate_usage(request, ()).prompt_tokens  # the prompt side alone
        body = {"input_tokens": estimate, "estimated": True}
    record.decision["count_tokens"] = {
        "input_tokens": body["input_tokens"],
        "model": model,
        "exact": exact,
    }
    return body


def count_tokens_routes(gateway: Gateway, auth: Authenticator) -> list[Route]:
    """The endpoint, behind the same keys as ``/v1/messages``."""
    limit = gateway.config.server.max_body_bytes

    async def endpoint(request: Request) -> Response:
        started = time.time()
        request_id = new_request_id()
        record: RequestRecord | None = None
        try:
            key_id = auth.authenticate(request.headers)
            raw = await request.body()
            if len(raw) > limit:
                raise GatewayError(
                    "request_too_large", f"Request body exceeds the limit of {limit} bytes."
                )
            try:
                body = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise GatewayError(
                    "invalid_request", f"Request body is not valid JSON: {exc}"
                ) from None
            counted = {**body, "max_tokens": 1} if isinstance(body, dict) else body
            chat = parse_messages_request(counted)
            assert chat.native is not None
            chat.native.body = body  # counted as the client sent it
            chat.native.headers = dict(request.headers)
            record = gateway.new_record(
                "anthropic", chat, request_id=request_id, key_id=key_id, started_at=started
            )
            answer = await count(gateway, chat, record)
        except GatewayError as err:
            if record is None:
                record = gateway.new_record("anthropic", None, request_id=request_id)
            record.decision["endpoint"] = "count_tokens"
            finish_record(record, err)
            gateway.emit(record)
            return Response(
                ANTHROPIC.render_error(err),
                status_code=ANTHROPIC.error_status(err),
                media_type=_JSON,
                headers=ANTHROPIC.error_headers(err, request_id),
            )
        record.decision["endpoint"] = "count_tokens"
        finish_record(record)
        gateway.emit(record)
        headers = {
            "x-modelmix-request-id": request_id,
            "request-id": request_id,
            "x-modelmix-model": record.final_model or "",
        }
        if answer.get("estimated"):
            headers["x-modelmix-tokens-estimated"] = "true"
        return Response(orjson.dumps(answer), media_type=_JSON, headers=headers)

    return [Route(COUNT_TOKENS_PATH, endpoint, methods=["POST"])]
