"""Engine behaviour (retries, Retry-After, fallback, cool-down, load balancing, streams)
with a scripted in-memory client: no network, exact control over each call's outcome."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest

from modelmix.engine import Engine
from modelmix.errors import GatewayError, UnsupportedParameter, UpstreamError
from modelmix.ledger.records import RequestRecord
from modelmix.portfolio import build_portfolio
from modelmix.providers.base import Deployment, ProviderAdapter
from modelmix.routing.strategy import Router
from modelmix.tokens import count_tokens
from modelmix.types import ChatRequest, ChatResponse, StreamDelta, Usage
from tests.helpers import make_config

Script = list[UpstreamError | UnsupportedParameter | str]


class ScriptedClient:
    """Answers each call from a per-deployment script: an UpstreamError to raise, or text."""

    def __init__(self, scripts: dict[str, Script]) -> None:
        self.scripts = scripts
        self.calls: list[str] = []

    def _next(self, dep: Deployment) -> str:
        self.calls.append(dep.id)
        script = self.scripts.get(dep.id) or ["ok"]
        step = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(step, UpstreamError | UnsupportedParameter):
            raise step
        return step

    async def complete(
        self, adapter: ProviderAdapter, dep: Deployment, request: ChatRequest, timeouts: Any
    ) -> ChatResponse:
        text = self._next(dep)
        return ChatResponse(
            id="x",
            model=dep.upstream_model,
            content=text,
            usage=Usage(prompt_tokens=1000, completion_tokens=500),
        )

    async def stream(
        self, adapter: ProviderAdapter, dep: Deployment, request: ChatRequest, timeouts: Any
    ) -> FakeStream:
        return FakeStream(self._next(dep))

    async def close(self) -> None:
        pass


class FakeStream:
    """Yields words; the text "cut" yields two deltas then fails like a dropped connection."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.closed = False

    async def _gen(self) -> AsyncIterator[StreamDelta]:
        if self.text == "cut":
            yield StreamDelta(content="par")
            yield StreamDelta(content="tial")
            raise UpstreamError("bad_response", "stream ended before completion")
        for word in self.text.split():
            yield StreamDelta(content=word)
        yield StreamDelta(finish_reason="stop", usage=Usage(prompt_tokens=10, completion_tokens=3))

    def __aiter__(self) -> AsyncIterator[StreamDelta]:
        if not hasattr(self, "_it"):
            self._it = self._gen()
        return self._it

    async def __anext__(self) -> StreamDelta:
        return await self.__aiter__().__anext__()

    def take_buffered(self) -> list[StreamDelta]:
        return []

    async def aclose(self) -> None:
        self.closed = True


MODELS = [
    {
        "name": "a",
        "provider": "ollama",
        "price": {"input": "1", "output": "2"},
        "deployments": [{"base_url": "http://h1/v1"}, {"base_url": "http://h2/v1"}],
    },
    {"name": "b", "provider": "ollama", "price": {"input": "3", "output": "4"}},
]
ROUTES = [{"name": "chain", "models": ["a", "b"]}]


def make_engine(
    scripts: dict[str, Script], **engine: Any
) -> tuple[Engine, ScriptedClient, list[RequestRecord]]:
    settings = {"retries": 2, "backoff_base": 0.001, "backoff_max": 0.002, **engine}
    config = make_config(MODELS, ROUTES, engine=settings)
    portfolio = build_portfolio(config, {})
    client = ScriptedClient(scripts)
    records: list[RequestRecord] = []
    eng = Engine(
        portfolio,
        Router(config.routes, portfolio),
        client,  # type: ignore[arg-type]
        config.engine,
        records.append,
    )
    return eng, client, records


def new_record(model: str = "chain") -> RequestRecord:
    return RequestRecord(id="req", started_at=0.0, api="openai", requested_model=model)


def request(stream: bool = False) -> ChatRequest:
    return ChatRequest(model="chain", messages=[{"role": "user", "content": "hi"}], stream=stream)


def err(kind: str, retry_after: float | None = None, status: int = 500) -> UpstreamError:
    return UpstreamError(
        kind,
        f"{kind} happened",
        status=status,  # type: ignore[arg-type]
        retry_after=retry_after,
    )


async def test_success_records_cost_from_price_override() -> None:
    eng, _, records = make_engine({})
    response = await eng.complete(request(), new_record())
    assert response.content == "ok"
    (rec,) = records
    assert rec.final_model == "a" and rec.route == "chain" and rec.status == "ok"
    # 1000 prompt tokens at $1/M + 500 completion tokens at $2/M
    assert rec.cost_usd == Decimal("0.002")
    assert rec.attempts[0].price_source == "config"


async def test_retry_on_other_deployment_then_fallback_to_next_model() -> None:
    eng, client, records = make_engine({"a#0": [err("server")], "a#1": [err("server")]}, retries=1)
    response = await eng.complete(request(), new_record())
    assert response.model == "b"
    # both deployments of a were tried once each (load balancing, no sleep), then b
    assert Counter(client.calls[:2]) == Counter(["a#0", "a#1"]) and client.calls[2] == "b#0"
    rec = records[0]
    assert [a.status for a in rec.attempts] == ["error", "error", "ok"]
    assert rec.attempts[0].error_kind == "server"
    assert rec.final_model == "b"


async def test_long_retry_after_falls_back_instead_of_waiting() -> None:
    eng, client, records = make_engine(
        {
            "a#0": [err("rate_limit", retry_after=60, status=429)],
            "a#1": [err("rate_limit", retry_after=60, status=429)],
        },
        max_retry_after=5,
    )
    await eng.complete(request(), new_record())
    assert client.calls[-1] == "b#0"
    assert len(records[0].attempts) == 2


async def test_non_retryable_error_moves_on_without_retrying() -> None:
    eng, client, _ = make_engine(
        {"a#0": [err("invalid_request", status=400)], "a#1": [err("invalid_request", status=400)]}
    )
    await eng.complete(request(), new_record())
    assert len([c for c in client.calls if c.startswith("a")]) == 1


async def test_all_fail_maps_last_error_to_client_status() -> None:
    eng, _, records = make_engine(
        {
            "a#0": [err("server")],
            "a#1": [err("server")],
            "b#0": [err("rate_limit", retry_after=1.0, status=429)],
        },
        retries=0,
    )
    with pytest.raises(GatewayError) as info:
        await eng.complete(request(), new_record())
    assert info.value.status == 429 and info.value.retry_after == 1.0
    assert records[0].status == "error" and records[0].http_status == 429


async def test_cooldown_skips_a_model_whose_deployments_keep_failing() -> None:
    eng, client, records = make_engine(
        {"a#0": [err("connection")], "a#1": [err("connection")]},
        retries=1,
        cooldown={"failures": 2, "seconds": 60},
    )
    for _ in range(5):
        response = await eng.complete(request(), new_record())
        assert response.model == "b"
    # two requests tried both deployments of a; then both rest and a is not called again
    assert client.calls.count("a#0") == 2 and client.calls.count("a#1") == 2
    assert client.calls.count("b#0") == 5
    assert not eng.health.available("a#0", now=time.time())
    assert records[-1].attempts[0].model == "b"
    # the model passed over leaves a trace: skipped, why, and where in the chain
    assert "skipped" not in records[1].decision
    for rec in records[2:]:
        assert rec.decision["skipped"] == [
            {"model": "a", "reason": "cooling down", "at_attempt": 0}
        ]


@pytest.mark.parametrize(
    "fault",
    [
        err("invalid_request", status=400),
        err("content_filter", status=400),
        UnsupportedParameter("messages", "content part type 'input_audio'"),
    ],
    ids=["invalid_request", "content_filter", "unsupported_parameter"],
)
async def test_client_caused_errors_never_cool_a_deployment_down(
    fault: UpstreamError | UnsupportedParameter,
) -> None:
    models = [{"name": "solo", "provider": "ollama"}]
    config = make_config(models, [], engine={"cooldown": {"failures": 2, "seconds": 60}})
    portfolio = build_portfolio(config, {})
    client = ScriptedClient({"solo#0": [fault, fault, fault, fault, "ok"]})
    records: list[RequestRecord] = []
    eng = Engine(
        portfolio,
        Router(config.routes, portfolio),
        client,  # type: ignore[arg-type]
        config.engine,
        records.append,
    )
    solo = ChatRequest(model="solo", messages=[{"role": "user", "content": "x"}])
    for _ in range(4):  # twice the cool-down threshold
        with pytest.raises(GatewayError) as info:
            await eng.complete(solo, new_record("solo"))
        assert info.value.status == 400  # the client's fault, every time: never a 503
    assert eng.health.available("solo#0", now=time.time())
    response = await eng.complete(solo, new_record("solo"))
    assert response.content == "ok"
    assert client.calls == ["solo#0"] * 5  # each bad request was tried once, not retried


async def test_stream_fails_over_before_first_delta() -> None:
    eng, _, records = make_engine({"a#0": [err("server")], "a#1": [err("server")]}, retries=1)
    stream = await eng.stream(request(stream=True), new_record())
    assert stream.model == "b"
    text = "".join([d.content or "" async for d in stream])
    assert text == "ok"
    (rec,) = records
    assert rec.status == "ok" and rec.final_model == "b"
    assert rec.attempts[-1].prompt_tokens == 10  # usage from the stream's last delta


async def test_stream_cut_after_first_delta_raises_and_records_cut() -> None:
    eng, _, records = make_engine({"a#0": ["cut"], "a#1": ["cut"]})
    stream = await eng.stream(request(stream=True), new_record())
    got = []
    with pytest.raises(GatewayError) as info:
        async for d in stream:
            got.append(d.content)
    assert got == ["par", "tial"]
    assert info.value.code == "stream_interrupted"
    (rec,) = records
    assert rec.status == "error" and rec.attempts[-1].status == "cut"


async def test_stream_without_usage_records_estimated_tokens_and_cost() -> None:
    # A cut stream never sends its usage, yet "partial" reached the client: it is billed.
    eng, _, records = make_engine({"a#0": ["cut"], "a#1": ["cut"]})
    stream = await eng.stream(request(stream=True), new_record())
    with pytest.raises(GatewayError):
        async for _ in stream:
            pass
    (attempt,) = records[0].attempts
    assert attempt.status == "cut"
    assert attempt.completion_tokens == count_tokens("partial")
    assert attempt.prompt_tokens == count_tokens("hi") + 4  # plus the per-message overhead
    # model a's override: $1/M in, $2/M out
    expected = (Decimal(attempt.prompt_tokens) + 2 * Decimal(attempt.completion_tokens)) / 10**6
    assert attempt.cost_usd == expected and records[0].cost_usd == expected
    assert attempt.price_source == "config (tokens estimated: the upstream reported no usage)"


async def test_client_closing_a_stream_is_billed_for_what_it_took() -> None:
    eng, _, records = make_engine({"a#0": ["one two three"], "a#1": ["one two three"]})
    stream = await eng.stream(request(stream=True), new_record())
    deltas = stream.deltas()
    assert (await deltas.__anext__()).content == "one"
    assert (await deltas.__anext__()).content == "two"  # "one" was taken
    await deltas.aclose()  # the client hangs up
    (rec,) = records
    assert rec.status == "client_closed"
    assert rec.attempts[0].completion_tokens == count_tokens("one")
    assert rec.cost_usd > 0 and "tokens estimated" in (rec.attempts[0].price_source or "")


async def test_load_balancing_follows_weights() -> None:
    models = [
        {
            "name": "a",
            "provider": "ollama",
            "deployments": [
                {"base_url": "http://h1/v1", "weight": 3},
                {"base_url": "http://h2/v1", "weight": 1},
            ],
        }
    ]
    config = make_config(models, [])
    portfolio = build_portfolio(config, {})
    client = ScriptedClient({})
    eng = Engine(
        portfolio,
        Router(config.routes, portfolio),
        client,  # type: ignore[arg-type]
        config.engine,
        lambda r: None,
    )
    for _ in range(800):
        await eng.complete(
            ChatRequest(model="a", messages=[{"role": "user", "content": "x"}]), new_record("a")
        )
    share = client.calls.count("a#0") / len(client.calls)
    assert 0.68 < share < 0.82  # 0.75 expected; binomial sd ~0.015


async def test_short_retry_after_is_waited_for_then_retried() -> None:
    models = [{"name": "solo", "provider": "ollama"}]
    config = make_config(models, [], engine={"retries": 1, "backoff_base": 0.0})
    portfolio = build_portfolio(config, {})
    client = ScriptedClient({"solo#0": [err("rate_limit", retry_after=0.2, status=429), "ok"]})
    records: list[RequestRecord] = []
    eng = Engine(
        portfolio,
        Router(config.routes, portfolio),
        client,  # type: ignore[arg-type]
        config.engine,
        records.append,
    )
    started = time.monotonic()
    response = await eng.complete(
        ChatRequest(model="solo", messages=[{"role": "user", "content": "x"}]), new_record("solo")
    )
    assert response.content == "ok"
    assert time.monotonic() - started >= 0.2  # the upstream's Retry-After was honoured
    assert client.calls == ["solo#0", "solo#0"]
    assert [a.http_status for a in records[0].attempts] == [429, 200]
