"""OpenTelemetry spans from finished ledger records (GenAI semantic conventions)."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from modelmix import tracing
from modelmix.defaults import default_config
from modelmix.gateway import Gateway
from modelmix.ledger.records import AttemptRecord, RequestRecord
from modelmix.tracing import Tracer, TracingOptions

SRC = Path(__file__).resolve().parents[1] / "src"
T0 = 1_700_000_000.25  # a request's start, unix seconds


def needs_otel() -> Any:
    pytest.importorskip(
        "opentelemetry.sdk.trace",
        reason="the otel extra is not installed (pip install -e '.[otel]')",
    )
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    return InMemorySpanExporter()


def fallback_record() -> RequestRecord:
    record = RequestRecord(
        id="mm-abc",
        started_at=T0,
        api="openai",
        requested_model="auto",
        route="auto",
        key_id="key-1",
        config_hash="cfg",
        decision={"strategy": "fallback", "chosen": "small", "candidates": [{"model": "big"}]},
        final_model="small",
        latency_ms=900.0,
        ttft_ms=700.0,
        prompt_tokens=1200,
        completion_tokens=80,
        cost_usd=Decimal("0.00042"),
        team="search",
        tags=("prod", "feature:faq"),
    )
    record.attempts = [
        AttemptRecord(
            request_id="mm-abc",
            seq=0,
            model="big",
            deployment="big#0",
            provider="anthropic",
            upstream_model="claude-sonnet-4",
            started_at=T0 + 0.01,
            latency_ms=250.0,
            status="error",
            http_status=429,
            error_kind="rate_limit",
            error="slow down",
        ),
        AttemptRecord(
            request_id="mm-abc",
            seq=1,
            model="small",
            deployment="small#0",
            provider="gemini",
            upstream_model="gemini-2.5-flash",
            started_at=T0 + 0.3,
            latency_ms=600.0,
            ttft_ms=400.0,
            http_status=200,
            prompt_tokens=1200,
            completion_tokens=80,
            cached_tokens=1024,
            reasoning_tokens=30,
            cost_usd=Decimal("0.00042"),
            price_source="config",
        ),
    ]
    return record


def test_off_by_default_and_imports_nothing() -> None:
    # A fresh interpreter: a disabled tracer must not import OpenTelemetry at all.
    code = (
        "import sys\n"
        "from modelmix.ledger.records import RequestRecord\n"
        "from modelmix.tracing import Tracer, TracingOptions\n"
        "for t in (Tracer(), Tracer(TracingOptions())):\n"
        "    assert not t.enabled\n"
        "    t.export(RequestRecord(id='r', started_at=0.0, api='openai', requested_model='m'))\n"
        "    t.close()\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('opentelemetry'))\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(SRC)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_spans_follow_the_genai_conventions() -> None:
    exporter = needs_otel()
    tracer = Tracer(TracingOptions(enabled=True, service_name="gw-test"), exporter=exporter)
    tracer.export(fallback_record())
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == [
        "chat claude-sonnet-4",
        "chat gemini-2.5-flash",
        "chat auto",
    ]
    failed, answered, parent = spans
    from opentelemetry.trace import SpanKind, StatusCode

    # parent / child
    assert parent.parent is None
    assert parent.kind is SpanKind.SERVER
    for child in (failed, answered):
        assert child.kind is SpanKind.CLIENT
        assert child.parent is not None
        assert child.parent.span_id == parent.context.span_id
        assert child.context.trace_id == parent.context.trace_id
    assert parent.resource.attributes["service.name"] == "gw-test"

    # timing comes from the record, not from when export ran
    assert parent.start_time is not None and parent.end_time is not None
    assert abs(parent.start_time - 1_700_000_000_250_000_000) < 1_000
    assert parent.end_time - parent.start_time == 900_000_000
    assert answered.start_time is not None and answered.end_time is not None
    assert answered.start_time - parent.start_time == pytest.approx(300_000_000, abs=1_000)
    assert answered.end_time - answered.start_time == 600_000_000
    (event,) = answered.events
    assert event.name == "gen_ai.first_token"
    assert event.timestamp - answered.start_time == 400_000_000
    assert failed.events == ()

    # the request span
    p = dict(parent.attributes or {})
    assert p["gen_ai.operation.name"] == "chat"
    assert p["gen_ai.request.model"] == "auto"
    assert p["gen_ai.response.model"] == "gemini-2.5-flash"
    assert p["gen_ai.provider.name"] == "gcp.gemini"
    assert p["modelmix.route"] == "auto"
    assert p["modelmix.request_id"] == "mm-abc"
    assert p["modelmix.key_id"] == "key-1"
    assert p["modelmix.team"] == "search" and p["modelmix.tags"] == ("prod", "feature:faq")
    assert p["modelmix.cost_confidence"] == "exact"
    assert p["modelmix.model"] == "small"
    assert p["modelmix.cost_usd"] == pytest.approx(0.00042)
    assert p["modelmix.attempts"] == 2
    assert p["modelmix.usage.input_tokens"] == 1200
    assert p["modelmix.decision.strategy"] == "fallback"
    assert p["modelmix.decision.chosen"] == "small"
    assert '"candidates":[{"model":"big"}]' in p["modelmix.decision"]
    assert "gen_ai.usage.input_tokens" not in p  # counted once, on the attempt
    assert "error.type" not in p
    assert parent.status.status_code is StatusCode.UNSET

    # the failed attempt
    f = dict(failed.attributes or {})
    assert f["gen_ai.provider.name"] == "anthropic"
    assert f["gen_ai.system"] == "anthropic"
    assert f["gen_ai.request.model"] == "claude-sonnet-4"
    assert "gen_ai.response.model" not in f
    assert f["error.type"] == "rate_limit"
    assert f["http.response.status_code"] == 429
    assert f["modelmix.attempt"] == 0
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "slow down"

    # the answering attempt
    a = dict(answered.attributes or {})
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "gcp.gemini"
    assert a["gen_ai.system"] == "gemini"
    assert a["gen_ai.request.model"] == a["gen_ai.response.model"] == "gemini-2.5-flash"
    assert a["gen_ai.usage.input_tokens"] == 1200
    assert a["gen_ai.usage.output_tokens"] == 80
    assert a["gen_ai.usage.cache_read.input_tokens"] == 1024
    assert a["gen_ai.usage.reasoning.output_tokens"] == 30
    assert "gen_ai.usage.cache_creation.input_tokens" not in a
    assert a["modelmix.cost_usd"] == pytest.approx(0.00042)
    assert a["modelmix.model"] == "small"
    assert a["modelmix.deployment"] == "small#0"
    assert "error.type" not in a
    assert answered.status.status_code is StatusCode.UNSET
    tracer.close()


def test_failed_request_and_cascade_decision() -> None:
    exporter = needs_otel()
    tracer = Tracer(TracingOptions(enabled=True), exporter=exporter)
    record = fallback_record()
    record.attempts = record.attempts[:1]
    record.final_model = None
    record.status, record.http_status, record.error = "error", 429, "every model is busy"
    record.decision = {"strategy": "cascade", "escalated": True, "steps": ["x" * 10_000]}
    tracer.export(record)
    # rejected before routing: no model, no attempts
    tracer.export(RequestRecord(id="r2", started_at=T0, api="anthropic", requested_model=""))
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"chat claude-sonnet-4", "chat auto", "chat"}
    p = dict(spans["chat auto"].attributes or {})
    from opentelemetry.trace import StatusCode

    assert spans["chat auto"].status.status_code is StatusCode.ERROR
    assert spans["chat auto"].status.description == "every model is busy"
    assert p["error.type"] == "429"
    assert "gen_ai.response.model" not in p
    assert p["modelmix.decision.escalated"] is True
    assert len(p["modelmix.decision"]) == tracing.DECISION_MAX_CHARS
    bare = dict(spans["chat"].attributes or {})
    assert "gen_ai.request.model" not in bare
    assert bare["modelmix.api"] == "anthropic"
    tracer.close()


def test_sample_ratio_zero_exports_nothing() -> None:
    exporter = needs_otel()
    tracer = Tracer(TracingOptions(enabled=True, sample_ratio=0.0), exporter=exporter)
    for _ in range(20):
        tracer.export(fallback_record())
    assert exporter.get_finished_spans() == ()
    tracer.close()


def test_export_never_raises(monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    exporter = needs_otel()
    tracer = Tracer(TracingOptions(enabled=True), exporter=exporter)

    def broken(attempt: AttemptRecord) -> dict[str, Any]:
        raise ValueError("bug")

    monkeypatch.setattr(tracing, "attempt_attributes", broken)
    with caplog.at_level(logging.ERROR, logger="modelmix.tracing"):
        tracer.export(fallback_record())
        tracer.export(fallback_record())
    assert len([r for r in caplog.records if "could not export" in r.message]) == 1
    tracer.close()


def test_missing_extra_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk.trace", None)
    with pytest.raises(RuntimeError, match=r"pip install 'modelmix\[otel\]'"):
        Tracer(TracingOptions(enabled=True))


async def test_real_gateway_request_becomes_a_trace(tmp_path: Path) -> None:
    exporter = needs_otel()
    tracer = Tracer(TracingOptions(enabled=True), exporter=exporter)
    config = default_config({}).model_copy(update={"data_dir": str(tmp_path)})
    async with Gateway(config, env={}, ledger=False) as gw:
        gw.engine.recorder = tracer.export  # the sink, as the gateway will wire it
        result = await gw.chat(
            {"model": "demo-fallback", "messages": [{"role": "user", "content": "What is 2+2?"}]}
        )
    tracer.close()
    record = result.record
    spans = exporter.get_finished_spans()
    parent = spans[-1]
    assert parent.name == "chat demo-fallback"
    children = spans[:-1]
    assert len(children) == len(record.attempts) >= 2
    assert all(
        c.parent is not None and c.parent.span_id == parent.context.span_id for c in children
    )
    assert [dict(c.attributes or {})["modelmix.status"] for c in children] == [
        a.status for a in record.attempts
    ]
    last = dict(children[-1].attributes or {})
    assert last["gen_ai.usage.output_tokens"] == result.response.usage.completion_tokens
    assert dict(parent.attributes or {})["modelmix.cost_usd"] == pytest.approx(
        float(record.cost_usd)
    )


async def test_spans_reach_an_otlp_http_collector() -> None:
    """The production path: the OTLP/HTTP exporter posts protobuf to the configured endpoint."""
    needs_otel()
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    received: list[tuple[str, bytes]] = []

    class Collector(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_port}/v1/traces"
        tracer = Tracer(TracingOptions(enabled=True, endpoint=endpoint, service_name="gw-otlp"))
        tracer.export(fallback_record())
        await tracer.aclose()  # flushes the batch
    finally:
        server.shutdown()
        thread.join()
    assert [path for path, _ in received] == ["/v1/traces"]
    sent = ExportTraceServiceRequest.FromString(received[0][1])
    (resource_spans,) = sent.resource_spans
    service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert service["service.name"] == "gw-otlp"
    names = sorted(s.name for scope in resource_spans.scope_spans for s in scope.spans)
    assert names == ["chat auto", "chat claude-sonnet-4", "chat gemini-2.5-flash"]
