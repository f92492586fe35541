"""The embeddings request lifecycle, the sibling of ``Gateway.run`` for ``/v1/embeddings``.

A new ledger record (``api="embeddings"``), admission (allowed models, rate limits, budgets:
``Accounting.admit`` over the inputs' tokens), then a fallback chain over embedding models
(the model asked for, or a route's models in order), each tried on its deployments with the
engine's timeouts, retries and cooldowns; every attempt lands on the record with its tokens
and cost, and the finished record goes to ``Gateway.emit`` (budgets settle, ledger, metrics).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelmix.budgets.accounting import Admission
from modelmix.embeddings.types import EmbeddingAdapter, EmbeddingRequest, EmbeddingResponse
from modelmix.engine import finish_record, to_gateway_error
from modelmix.errors import GatewayError, UpstreamError
from modelmix.ledger.records import AttemptRecord, RequestRecord
from modelmix.types import ChatRequest, Usage
from modelmix.wire.gemini.embeddings import EMBEDDINGS_ADAPTER as GEMINI
from modelmix.wire.openai_chat.embeddings import EMBEDDINGS_ADAPTER as OPENAI

if TYPE_CHECKING:
    from modelmix.gateway import Gateway
    from modelmix.providers.base import Deployment

#: Adapter kind -> embeddings adapter (``embeddings.checks.EMBEDDING_KINDS``).
ADAPTERS: dict[str, EmbeddingAdapter] = {"openai": OPENAI, "gemini": GEMINI}
API = "embeddings"


@dataclass(slots=True)
class EmbeddingResult:
    response: EmbeddingResponse
    record: RequestRecord
    admission: Admission


def embedding_models(gateway: Gateway) -> list[str]:
    return [name for name, e in gateway.portfolio.items() if e.kind == "embedding"]


def chain_for(gateway: Gateway, model: str) -> tuple[list[str], str | None]:
    """(models to try in order, route name or None) for the name a client asked for."""
    entry = gateway.portfolio.get(model)
    route = next((r for r in gateway.config.routes if r.name == model), None)
    if route is not None:
        names = route.all_models()
    elif entry is not None:
        names = [model]
    else:
        raise GatewayError(
            "not_found",
            f"The model {model!r} does not exist; embedding models: {embedding_models(gateway)}.",
            param="model",
            code="model_not_found",
        )
    if any(gateway.portfolio[n].kind != "embedding" for n in names):
        raise GatewayError(
            "invalid_request",
            f"{model!r} is not an embedding model; embedding models: {embedding_models(gateway)}.",
            param="model",
            code="model_not_embedding",
        )
    return names, route.name if route is not None else None


def _as_chat(request: EmbeddingRequest) -> ChatRequest:
    """What admission reads (model, prompt tokens, user, metadata) in its own shape; an
    embedding produces no tokens, so the completion estimate is priced at zero."""
    text = "\n".join(request.inputs)
    params = {"user": request.user} if request.user else {}
    return ChatRequest(
        request.model, [{"role": "user", "content": text}], params=params, metadata=request.metadata
    )


async def run_embeddings(
    gateway: Gateway,
    request: EmbeddingRequest,
    *,
    key_id: str | None = None,
    request_id: str | None = None,
    started_at: float | None = None,
) -> EmbeddingResult:
    """Record, admit, call the chain, emit. Raises ``GatewayError`` carrying the emitted
    record (and, once admitted, the admission)."""
    chat = _as_chat(request)
    record = gateway.new_record(
        API, chat, request_id=request_id, key_id=key_id, started_at=started_at
    )
    try:
        names, record.route = chain_for(gateway, request.model)
        admission = await gateway.admit_async(chat, record, key_id)
    except GatewayError as err:
        _fail(gateway, record, err)
        raise
    try:
        record.decision = {"strategy": "fallback", "candidates": [{"model": n} for n in names]}
        response = await _call_chain(gateway, request, record, names, admission)
    except GatewayError as err:
        err.admission = admission
        _fail(gateway, record, err)
        raise
    finally:
        gateway.accounting.abandon(record)  # no-op once the record settled
    return EmbeddingResult(response, record, admission)


def _fail(gateway: Gateway, record: RequestRecord, err: GatewayError) -> None:
    finish_record(record, err)
    gateway.emit(record)
    err.record = record


async def _call_chain(
    gateway: Gateway,
    request: EmbeddingRequest,
    record: RequestRecord,
    names: list[str],
    admission: Admission,
) -> EmbeddingResponse:
    last: UpstreamError | GatewayError | None = None
    for name in names:
        if admission.shared_models:
            refusal = await admission.admit_model_async(name)
        else:
            refusal = admission.admit_model(name)
        if refusal is not None:
            record.decision.setdefault("rate_limited", []).append(name)
            last = refusal
            continue
        response, error = await _call_model(gateway, request, record, name)
        if response is not None:
            record.final_model = name
            finish_record(record)
            gateway.emit(record)
            return response
        last = error
        if isinstance(error, UpstreamError) and error.kind == "invalid_request":
            break  # the request itself was refused: another model would refuse it too
    if last is None:
        raise GatewayError("unavailable", f"No embedding model of {request.model!r} can be called.")
    raise to_gateway_error(last, record.attempts[-1].model if record.attempts else names[-1])


async def _call_model(
    gateway: Gateway, request: EmbeddingRequest, record: RequestRecord, name: str
) -> tuple[EmbeddingResponse | None, UpstreamError | GatewayError | None]:
    """One model, on its deployments (the engine's retries, health and timeouts)."""
    entry = gateway.portfolio[name]
    if entry.unavailable is not None:
        return None, GatewayError("unavailable", f"{name} is unavailable: {entry.unavailable}")
    engine = gateway.engine
    adapter = ADAPTERS[entry.provider]
    last: UpstreamError | None = None
    for dep in entry.deployments[: engine.settings.retries + 1]:
        if not engine.health.available(dep.id, time.time()):
            continue
        try:
            return await _call_deployment(gateway, adapter, dep, request, record), None
        except UpstreamError as err:
            last = err
            if err.kind not in ("invalid_request", "content_filter"):
                engine.health.failure(dep.id, time.time())
            if not err.retryable:
                break
    if last is None:
        last = UpstreamError("overloaded", f"every deployment of {name} is cooling down")
    return None, last


async def _call_deployment(
    gateway: Gateway,
    adapter: EmbeddingAdapter,
    dep: Deployment,
    request: EmbeddingRequest,
    record: RequestRecord,
) -> EmbeddingResponse:
    started = time.time()
    attempt = AttemptRecord(
        request_id=record.id,
        seq=len(record.attempts),
        model=dep.model,
        deployment=dep.id,
        provider=dep.provider,
        upstream_model=dep.upstream_model,
        started_at=started,
    )
    record.attempts.append(attempt)
    engine, client = gateway.engine, gateway.client
    assert client is not None  # the engine exists: the gateway has started
    try:
        http = adapter.build_request(request, dep)
        status, body, headers = await client.exchange(http, engine.timeouts)
        if not 200 <= status < 300:
            raise adapter.parse_error(status, body, headers)
        response = adapter.parse_response(body, request)
    except UpstreamError as err:
        attempt.latency_ms = (time.time() - started) * 1000.0
        attempt.status, attempt.http_status = "error", err.status
        attempt.error_kind, attempt.error = err.kind, err.message[:500]
        raise
    attempt.latency_ms = attempt.ttft_ms = (time.time() - started) * 1000.0
    _priced(attempt, response.usage, dep, getattr(adapter, "usage_estimated", False))
    engine.health.success(dep.id)
    return response


def _priced(attempt: AttemptRecord, usage: Usage, dep: Deployment, estimated: bool) -> None:
    attempt.prompt_tokens = usage.prompt_tokens
    attempt.usage_estimated = estimated
    if dep.price is not None:
        attempt.cost_usd = dep.price.cost(usage)
        attempt.price_source = dep.price.source
    else:
        attempt.price_source = "unknown"
