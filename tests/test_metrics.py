"""Prometheus metrics from finished ledger records: scraped text, bounded labels, buckets."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelmix.defaults import default_config
from modelmix.gateway import Gateway
from modelmix.ledger.records import AttemptRecord, RequestRecord
from modelmix.metrics import Metrics
from tests.helpers import make_config

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist."""
    return samples.get((metric, frozenset(labels.items())), 0.0)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for n, labels in samples if n == name]


def attempt(model: str, seq: int = 0, **kw: Any) -> AttemptRecord:
    fields: dict[str, Any] = {
        "request_id": "r",
        "seq": seq,
        "model": model,
        "deployment": f"{model}#0",
        "provider": "openai",
        "upstream_model": f"up-{model}",
        "started_at": 1000.0,
        "latency_ms": 400.0,
        "ttft_ms": 120.0,
        "http_status": 200,
    }
    return AttemptRecord(**(fields | kw))


def request(attempts: list[AttemptRecord], **kw: Any) -> RequestRecord:
    fields: dict[str, Any] = {
        "id": "r",
        "started_at": 1000.0,
        "api": "openai",
        "requested_model": "auto",
        "route": "auto",
        "latency_ms": 420.0,
        "ttft_ms": 130.0,
        "final_model": attempts[-1].model if attempts else None,
    }
    record = RequestRecord(**(fields | kw))
    record.attempts = attempts
    record.cost_usd = sum((a.cost_usd or Decimal(0) for a in attempts), Decimal(0))
    return record


@pytest.fixture
def metrics() -> Metrics:
    return Metrics(models=["small", "big"], routes=["auto", "cheap"])


def test_one_request_counts_tokens_cost_and_latency(metrics: Metrics) -> None:
    a = attempt(
        "small",
        prompt_tokens=1200,
        completion_tokens=300,
        cached_tokens=512,
        reasoning_tokens=40,
        cost_usd=Decimal("0.000123"),
    )
    metrics.observe(request([a]))
    s = scrape(metrics)

    assert value(s, "modelmix_requests_total", route="auto", model="small", status="ok") == 1
    assert series(s, "modelmix_requests_total") == [
        {"route": "auto", "model": "small", "status": "ok"}
    ]
    assert (
        value(s, "modelmix_upstream_attempts_total", model="small", status="ok", error_kind="none")
        == 1
    )
    tokens = {
        labels["kind"]: value(s, "modelmix_tokens_total", **labels)
        for labels in series(s, "modelmix_tokens_total")
    }
    # zero counts (cache_write here) create no series
    assert tokens == {"prompt": 1200, "completion": 300, "cached": 512, "reasoning": 40}
    assert value(s, "modelmix_cost_usd_total", model="small", route="auto") == pytest.approx(
        0.000123
    )

    # request latency 0.42 s: not in le=0.25, in le=0.5 and above
    h = "modelmix_request_duration_seconds"
    assert value(s, h + "_bucket", route="auto", le="0.25") == 0
    assert value(s, h + "_bucket", route="auto", le="0.5") == 1
    assert value(s, h + "_bucket", route="auto", le="+Inf") == 1
    assert value(s, h + "_count", route="auto") == 1
    assert value(s, h + "_sum", route="auto") == pytest.approx(0.42)
    # per-attempt time to first token 0.12 s: le=0.1 no, le=0.2 yes
    t = "modelmix_time_to_first_token_seconds"
    assert value(s, t + "_bucket", model="small", le="0.1") == 0
    assert value(s, t + "_bucket", model="small", le="0.2") == 1
    assert value(s, "modelmix_request_ttft_seconds_sum", route="auto") == pytest.approx(0.13)
    u = "modelmix_upstream_attempt_duration_seconds"
    assert value(s, u + "_sum", model="small") == pytest.approx(0.4)
    # nothing went wrong
    assert series(s, "modelmix_errors_total") == []
    assert series(s, "modelmix_fallbacks_total") == []
    assert series(s, "modelmix_cascade_escalations_total") == []


def test_costs_and_counts_add_up_over_requests(metrics: Metrics) -> None:
    costs = [Decimal("0.0105"), Decimal("0.0020"), Decimal("0.000375")]
    for i, c in enumerate(costs):
        route = "auto" if i < 2 else "cheap"
        metrics.observe(request([attempt("big", cost_usd=c, prompt_tokens=100)], route=route))
    metrics.observe(request([attempt("big", cost_usd=None, prompt_tokens=100)]))  # unpriced
    s = scrape(metrics)
    assert value(s, "modelmix_cost_usd_total", model="big", route="auto") == pytest.approx(0.0125)
    assert value(s, "modelmix_cost_usd_total", model="big", route="cheap") == pytest.approx(
        0.000375
    )
    assert value(s, "modelmix_tokens_total", model="big", kind="prompt") == 400
    assert value(s, "modelmix_requests_total", route="auto", model="big", status="ok") == 3
    assert value(s, "modelmix_request_duration_seconds_count", route="auto") == 3
    assert value(s, "modelmix_request_duration_seconds_count", route="cheap") == 1


def test_labels_are_bounded(metrics: Metrics) -> None:
    metrics.observe(request([attempt("mystery")], route="unlisted-route"))
    metrics.observe(request([attempt("small")], route=None, requested_model="small"))
    weird = attempt("small", status="exploded", error_kind="cosmic_ray")
    metrics.observe(request([weird], status="strange", final_model=None))
    s = scrape(metrics)
    assert value(s, "modelmix_requests_total", route="other", model="other", status="ok") == 1
    # a model named directly: no route
    assert value(s, "modelmix_requests_total", route="none", model="small", status="ok") == 1
    # no final model: the last model tried; unknown statuses and kinds become "other"
    assert value(s, "modelmix_requests_total", route="auto", model="small", status="other") == 1
    assert (
        value(
            s, "modelmix_upstream_attempts_total", model="small", status="other", error_kind="other"
        )
        == 1
    )
    assert value(s, "modelmix_tokens_total", model="other", kind="prompt") == 0
    routes = {labels["route"] for labels in series(s, "modelmix_requests_total")}
    models = {labels["model"] for labels in series(s, "modelmix_requests_total")}
    assert routes <= {"auto", "cheap", "none", "other"}
    assert models <= {"small", "big", "none", "other"}


def test_errors_and_requests_that_never_reached_a_model(metrics: Metrics) -> None:
    # rejected before routing (bad JSON, bad key): no route set, no attempts
    metrics.observe(
        request([], route=None, requested_model="auto", status="error", http_status=400)
    )
    metrics.observe(
        request([], route=None, requested_model="nope", status="error", http_status=404)
    )
    failed = attempt("big", status="error", error_kind="timeout", http_status=None, ttft_ms=None)
    metrics.observe(request([failed], status="error", http_status=504, final_model=None))
    # a client that went away mid-stream is not an error
    metrics.observe(request([attempt("small")], status="client_closed", http_status=499))
    s = scrape(metrics)
    assert value(s, "modelmix_errors_total", route="auto", http_status="400") == 1
    assert value(s, "modelmix_errors_total", route="none", http_status="404") == 1
    assert value(s, "modelmix_errors_total", route="auto", http_status="504") == 1
    assert len(series(s, "modelmix_errors_total")) == 3
    assert value(s, "modelmix_requests_total", route="auto", model="none", status="error") == 1
    assert value(s, "modelmix_requests_total", route="auto", model="big", status="error") == 1
    assert (
        value(s, "modelmix_requests_total", route="auto", model="small", status="client_closed")
        == 1
    )
    assert (
        value(
            s, "modelmix_upstream_attempts_total", model="big", status="error", error_kind="timeout"
        )
        == 1
    )
    # the failed attempt has a duration but produced no first token
    assert value(s, "modelmix_upstream_attempt_duration_seconds_count", model="big") == 1
    assert value(s, "modelmix_time_to_first_token_seconds_count", model="big") == 0


def test_fallbacks_and_cascade_escalations(metrics: Metrics) -> None:
    # the first model failed twice, the second answered: one fallback
    metrics.observe(
        request(
            [
                attempt("big", 0, status="error", error_kind="rate_limit", http_status=429),
                attempt("big", 1, status="error", error_kind="server", http_status=500),
                attempt("small", 2),
            ]
        )
    )
    # a retry that succeeded on the same model: not a fallback
    metrics.observe(
        request([attempt("small", 0, status="error", error_kind="server"), attempt("small", 1)])
    )
    # a cascade: the voter answered but was not trusted, the strong tier answered
    metrics.observe(
        request(
            [attempt("small", 0), attempt("big", 1)],
            route="cheap",
            decision={"strategy": "cascade", "escalated": True, "chosen": "big"},
        )
    )
    # a cascade whose voters were accepted
    metrics.observe(
        request(
            [attempt("small", 0), attempt("small", 1)],
            route="cheap",
            decision={"strategy": "cascade", "escalated": False, "chosen": "small"},
        )
    )
    s = scrape(metrics)
    assert value(s, "modelmix_fallbacks_total", route="auto") == 1
    assert series(s, "modelmix_fallbacks_total") == [{"route": "auto"}]
    assert value(s, "modelmix_cascade_escalations_total", route="cheap") == 1
    assert series(s, "modelmix_cascade_escalations_total") == [{"route": "cheap"}]
    a = "modelmix_upstream_attempts_total"
    assert value(s, a, model="big", status="error", error_kind="rate_limit") == 1
    assert value(s, a, model="big", status="error", error_kind="server") == 1
    assert value(s, a, model="small", status="error", error_kind="server") == 1
    assert value(s, a, model="small", status="ok", error_kind="none") == 5


def test_budget_gauges_are_bounded() -> None:
    metrics = Metrics(max_budget_series=2)
    metrics.set_budget_remaining("team", "search", 120.5)
    metrics.set_budget_remaining("team", "search", 99.25)  # updated, not a new series
    metrics.set_budget_remaining("galaxy", "", 7.0)  # unknown scope
    metrics.set_budget_remaining("key", "k-3", 1.0)  # over the cap: not reported
    s = scrape(metrics)
    g = "modelmix_budget_remaining_usd"
    assert value(s, g, scope="team", name="search") == 99.25
    assert value(s, g, scope="other", name="") == 7.0
    assert len(series(s, g)) == 2
    metrics.remove_budget("team", "search")
    metrics.set_budget_remaining("key", "k-3", 1.0)  # room again
    s = scrape(metrics)
    assert series(s, g) == [{"scope": "other", "name": ""}, {"scope": "key", "name": "k-3"}]


def test_each_instance_has_its_own_registry() -> None:
    one, two = Metrics(models=["small"]), Metrics(models=["small"])
    one.observe(request([attempt("small")], route=None))
    assert value(scrape(one), "modelmix_requests_total", route="none", model="small", status="ok")
    assert series(scrape(two), "modelmix_requests_total") == []


def test_openmetrics_when_asked(metrics: Metrics) -> None:
    metrics.observe(request([attempt("small")]))
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    assert b'modelmix_requests_total{model="small",route="auto",status="ok"} 1.0' in body


def test_for_config_bounds_by_configured_names() -> None:
    config = make_config(
        [{"name": "m1", "provider": "openai"}, {"name": "m2", "provider": "anthropic"}],
        [{"name": "r1", "models": ["m1", "m2"]}],
    )
    metrics = Metrics.for_config(config)
    metrics.observe(request([attempt("m2")], route="r1"))
    metrics.observe(request([attempt("m3")], route="r2"))
    s = scrape(metrics)
    assert value(s, "modelmix_requests_total", route="r1", model="m2", status="ok") == 1
    assert value(s, "modelmix_requests_total", route="other", model="other", status="ok") == 1


async def test_real_gateway_records(tmp_path: Path) -> None:
    """Records the engine really produced (a fallback, a stream, an error) as the sink sees them."""
    config = default_config({}).model_copy(update={"data_dir": str(tmp_path)})
    metrics = Metrics.for_config(config)
    async with Gateway(config, env={}, ledger=False) as gw:
        engine = gw.engine
        engine.recorder = metrics.observe  # the sink, as the gateway will wire it
        result = await gw.chat(
            {"model": "demo-fallback", "messages": [{"role": "user", "content": "What is 2+2?"}]}
        )
        stream = await gw.chat_stream(
            {"model": "sim-small", "messages": [{"role": "user", "content": "What is 3+3?"}]}
        )
        assert "6" in "".join([d.content or "" async for d in stream])
    record = result.record
    s = scrape(metrics)
    assert (
        value(s, "modelmix_requests_total", route="demo-fallback", model="sim-small", status="ok")
        == 1
    )
    assert value(s, "modelmix_requests_total", route="none", model="sim-small", status="ok") == 1
    assert value(s, "modelmix_fallbacks_total", route="demo-fallback") == 1
    failed = [a for a in record.attempts if a.status == "error"]
    assert failed
    assert sum(
        value(s, "modelmix_upstream_attempts_total", **labels)
        for labels in series(s, "modelmix_upstream_attempts_total")
        if labels["status"] == "error"
    ) == len(failed)
    assert value(s, "modelmix_cost_usd_total", model="sim-small", route="demo-fallback") == (
        pytest.approx(float(record.cost_usd))
    )
    assert value(s, "modelmix_tokens_total", model="sim-small", kind="prompt") > 0
    # both requests (non-stream and stream) give sim-small a time to first token
    assert value(s, "modelmix_time_to_first_token_seconds_count", model="sim-small") == 2
    assert value(s, "modelmix_request_duration_seconds_count", route="none") == 1
