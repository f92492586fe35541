"""OpenTelemetry traces of finished ledger records, following the GenAI semantic conventions.

Like the metrics, tracing is a sink of the ``RequestRecord`` the engine emits when a request
ends: ``Tracer.export`` builds the spans after the fact, with the record's own start and end
times, so nothing in the hot path knows about tracing.

- One ``SERVER`` span per client request, named ``chat {requested model or route}``, with the
  request's outcome and ``modelmix.*`` attributes (route, cost, routing decision, request id).
  Its token totals are ``modelmix.usage.*``, not ``gen_ai.usage.*``, so that backends summing
  GenAI usage over spans do not count the tokens twice.
- One ``CLIENT`` span per upstream attempt under it, named ``chat {upstream model}``, with
  ``gen_ai.operation.name``, ``gen_ai.provider.name`` (and the older ``gen_ai.system``),
  ``gen_ai.request.model``, ``gen_ai.response.model``, ``gen_ai.usage.*``, ``error.type``, and a
  ``gen_ai.first_token`` event when the attempt produced one.

Off by default. The OpenTelemetry SDK is an optional extra (``pip install modelmix[otel]``) and
is imported only when tracing is enabled; a disabled ``Tracer`` costs one attribute test per
request. Spans go over OTLP/HTTP (protobuf) to ``endpoint``, or to the standard
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT`` when it is unset
(headers from ``OTEL_EXPORTER_OTLP_HEADERS``), batched on a background thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from modelmix.ledger.records import AttemptRecord, RequestRecord
from modelmix.providers.specs import PROVIDERS

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Tracer as OtelTracer

log = logging.getLogger("modelmix.tracing")

#: The routing decision is attached as JSON, cut to this many characters.
DECISION_MAX_CHARS = 4096

INSTALL_HINT = "tracing needs the otel extra: pip install 'modelmix[otel]'"


class TracingSettings(Protocol):
    """What ``Tracer`` reads from the config (any object with these attributes)."""

    @property
    def enabled(self) -> bool: ...
    @property
    def endpoint(self) -> str | None: ...
    @property
    def service_name(self) -> str: ...
    @property
    def sample_ratio(self) -> float: ...


@dataclass(frozen=True, slots=True)
class TracingOptions:
    """A plain ``TracingSettings`` (the config's tracing section has the same fields)."""

    enabled: bool = False
    endpoint: str | None = None
    service_name: str = "modelmix"
    sample_ratio: float = 1.0


class Tracer:
    """Exports finished requests as spans; ``export`` is a no-op when tracing is off.

    ``exporter`` replaces the OTLP exporter (tests pass an ``InMemorySpanExporter``); spans
    then go to it synchronously, as each request is exported.
    """

    def __init__(
        self, settings: TracingSettings | None = None, *, exporter: SpanExporter | None = None
    ) -> None:
        self.enabled = settings is not None and settings.enabled
        self._provider: TracerProvider | None = None
        self._tracer: OtelTracer | None = None
        self._failed = False
        if settings is not None and self.enabled:
            self._setup(settings, exporter)

    def _setup(self, settings: TracingSettings, exporter: SpanExporter | None) -> None:
        try:
            from opentelemetry import trace
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
            from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        except ImportError as exc:
            raise RuntimeError(f"{INSTALL_HINT} ({exc})") from None

        provider = TracerProvider(
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
            resource=Resource.create({"service.name": settings.service_name}),
            shutdown_on_exit=False,  # close() does it; several gateways may share a process
        )
        if exporter is None:
            try:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                    OTLPSpanExporter,
                )
            except ImportError as exc:
                raise RuntimeError(f"{INSTALL_HINT} ({exc})") from None
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(settings.endpoint)))
        else:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        self._provider = provider
        self._tracer = provider.get_tracer("modelmix")
        self._trace = trace

    # -- the sink ----------------------------------------------------------------------------

    def export(self, record: RequestRecord) -> None:
        """Turn one finished request into spans (never raises)."""
        if self._tracer is None:
            return
        try:
            self._export(self._tracer, record)
        except Exception:
            if not self._failed:  # say it once, not on every request
                self._failed = True
                log.exception("could not export request %s as a trace", record.id)

    def _export(self, tracer: OtelTracer, record: RequestRecord) -> None:
        trace = self._trace
        start = _ns(record.started_at)
        end = start + _ns_ms(record.latency_ms)
        name = f"chat {record.requested_model}" if record.requested_model else "chat"
        parent = tracer.start_span(name, kind=trace.SpanKind.SERVER, start_time=start)
        if not parent.is_recording():  # sampled out
            return
        parent.set_attributes(request_attributes(record))
        if record.status != "ok":
            parent.set_status(trace.StatusCode.ERROR, record.error)
        context = trace.set_span_in_context(parent)
        for attempt in record.attempts:
            a_start = _ns(attempt.started_at)
            span = tracer.start_span(
                f"chat {attempt.upstream_model}",
                context=context,
                kind=trace.SpanKind.CLIENT,
                start_time=a_start,
                attributes=attempt_attributes(attempt),
            )
            if attempt.ttft_ms is not None:
                span.add_event("gen_ai.first_token", timestamp=a_start + _ns_ms(attempt.ttft_ms))
            if attempt.status != "ok":
                span.set_status(trace.StatusCode.ERROR, attempt.error)
            span.end(end_time=a_start + _ns_ms(attempt.latency_ms))
        parent.end(end_time=end)

    # -- lifecycle ---------------------------------------------------------------------------

    def flush(self, timeout_ms: int = 5000) -> bool:
        """Send what is queued; True when done in time (or nothing to do)."""
        return self._provider.force_flush(timeout_ms) if self._provider is not None else True

    def close(self) -> None:
        """Flush and stop the exporter (call once, when the gateway closes).

        Blocks while the last batch is sent: up to the exporter's timeout (10 s) when the
        collector is down. From async code use ``aclose``.
        """
        provider, self._provider, self._tracer = self._provider, None, None
        if provider is not None:
            provider.shutdown()

    async def aclose(self) -> None:
        """``close`` on a worker thread, so the event loop keeps running meanwhile."""
        if self._provider is not None:
            await asyncio.to_thread(self.close)


# -- attributes (plain functions: easy to test, no OpenTelemetry needed) -----------------------


def request_attributes(record: RequestRecord) -> dict[str, Any]:
    """The request span's attributes."""
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "modelmix.request_id": record.id,
        "modelmix.api": record.api,
        "modelmix.stream": record.stream,
        "modelmix.status": record.status,
        "http.response.status_code": record.http_status,
        "modelmix.attempts": len(record.attempts),
        "modelmix.cost_usd": float(record.cost_usd),
        "modelmix.usage.input_tokens": record.prompt_tokens,
        "modelmix.usage.output_tokens": record.completion_tokens,
    }
    if record.requested_model:
        attrs["gen_ai.request.model"] = record.requested_model
    if record.route is not None:
        attrs["modelmix.route"] = record.route
    if record.key_id is not None:
        attrs["modelmix.key_id"] = record.key_id
    if record.team is not None:
        attrs["modelmix.team"] = record.team
    if record.tags:
        attrs["modelmix.tags"] = list(record.tags)
    attrs["modelmix.cost_confidence"] = record.cost_confidence
    if record.config_hash:
        attrs["modelmix.config_hash"] = record.config_hash
    if record.ttft_ms is not None:
        attrs["modelmix.ttft_ms"] = record.ttft_ms
    if record.final_model is not None:
        attrs["modelmix.model"] = record.final_model
        answered = _answering_attempt(record)
        if answered is not None:
            attrs["gen_ai.response.model"] = answered.upstream_model
            provider, system = _provider_names(answered.provider)
            attrs["gen_ai.provider.name"] = provider
            attrs["gen_ai.system"] = system
    if record.status == "error":
        attrs["error.type"] = str(record.http_status)
    elif record.status != "ok":
        attrs["error.type"] = record.status  # e.g. client_closed
    attrs.update(decision_attributes(record.decision))
    return attrs


def attempt_attributes(attempt: AttemptRecord) -> dict[str, Any]:
    """An upstream attempt span's attributes (GenAI semantic conventions)."""
    provider, system = _provider_names(attempt.provider)
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.system": system,
        "gen_ai.request.model": attempt.upstream_model,
        "gen_ai.usage.input_tokens": attempt.prompt_tokens,
        "gen_ai.usage.output_tokens": attempt.completion_tokens,
        "modelmix.request_id": attempt.request_id,
        "modelmix.attempt": attempt.seq,
        "modelmix.model": attempt.model,
        "modelmix.deployment": attempt.deployment,
        "modelmix.status": attempt.status,
    }
    if attempt.cached_tokens:
        attrs["gen_ai.usage.cache_read.input_tokens"] = attempt.cached_tokens
    if attempt.cache_write_tokens:
        attrs["gen_ai.usage.cache_creation.input_tokens"] = attempt.cache_write_tokens
    if attempt.reasoning_tokens:
        attrs["gen_ai.usage.reasoning.output_tokens"] = attempt.reasoning_tokens
    if attempt.status in ("ok", "cut", "client_closed"):
        attrs["gen_ai.response.model"] = attempt.upstream_model
    if attempt.http_status is not None:
        attrs["http.response.status_code"] = attempt.http_status
    if attempt.status != "ok":
        attrs["error.type"] = attempt.error_kind or attempt.status
    if attempt.ttft_ms is not None:
        attrs["modelmix.ttft_ms"] = attempt.ttft_ms
    if attempt.cost_usd is not None:
        attrs["modelmix.cost_usd"] = float(attempt.cost_usd)
    if attempt.price_source is not None:
        attrs["modelmix.price_source"] = attempt.price_source
    return attrs


def decision_attributes(decision: Mapping[str, Any]) -> dict[str, Any]:
    """A summary of the routing decision: its strategy, choice, escalation, and the JSON."""
    attrs: dict[str, Any] = {}
    if not decision:
        return attrs
    for key in ("strategy", "chosen", "escalated"):
        value = decision.get(key)
        if isinstance(value, str | bool | int | float):
            attrs[f"modelmix.decision.{key}"] = value
    text = orjson.dumps(decision, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
    if len(text) > DECISION_MAX_CHARS:
        text = text[: DECISION_MAX_CHARS - 1] + "…"
    attrs["modelmix.decision"] = text
    return attrs


def _answering_attempt(record: RequestRecord) -> AttemptRecord | None:
    for attempt in reversed(record.attempts):
        if attempt.model == record.final_model and attempt.status != "error":
            return attempt
    return None


def _provider_names(adapter: str) -> tuple[str, str]:
    spec = PROVIDERS.get(adapter)  # (gen_ai.provider.name, gen_ai.system) from the registry
    return spec.telemetry if spec is not None and spec.telemetry else (adapter, adapter)


def _ns(unix_seconds: float) -> int:
    return int(unix_seconds * 1e9)


def _ns_ms(ms: float | None) -> int:
    return 0 if ms is None else int(ms * 1e6)
