"""The contract every adapter honours, through the real UpstreamClient and a real socket.

One parametrized suite, run once per wire format against the simulated upstream
(``modelmix.simulated``), whose behaviour is chosen by the model name.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from modelmix.errors import UpstreamError
from modelmix.providers.base import Deployment
from modelmix.providers.http import STREAM_CUT, Timeouts, UpstreamClient, UpstreamStream
from modelmix.providers.registry import get_adapter
from modelmix.simulated import Simulator, start_simulator
from modelmix.types import ChatRequest, ChatResponse, StreamDelta, ToolCall, Usage

KINDS = ["openai", "anthropic", "gemini"]
FAST = Timeouts(connect=1.0, first_token=2.0, total=5.0)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    simulator = await start_simulator()
    try:
        yield simulator
    finally:
        await simulator.stop()


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    upstream = UpstreamClient(limit=10)
    try:
        yield upstream
    finally:
        await upstream.close()


def _dep(sim: Simulator, kind: str, model: str, base_url: str | None = None) -> Deployment:
    return Deployment(
        id=f"{model}#0",
        model=model,
        provider=kind,
        upstream_model=model,
        base_url=base_url or sim.base_url(kind),
        api_key="test-key",
    )


def _ask(text: str = "What is 2+2?", *, stream: bool = False, **kw: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=[{"role": "user", "content": text}], stream=stream, **kw)


async def _complete(
    client: UpstreamClient, dep: Deployment, req: ChatRequest, timeouts: Timeouts = FAST
) -> ChatResponse:
    return await client.complete(get_adapter(dep.provider), dep, req, timeouts)


async def _open(
    client: UpstreamClient, dep: Deployment, req: ChatRequest, timeouts: Timeouts = FAST
) -> UpstreamStream:
    req.stream = True
    return await client.stream(get_adapter(dep.provider), dep, req, timeouts)


async def _collect(stream: UpstreamStream) -> list[StreamDelta]:
    try:
        return [delta async for delta in stream]
    finally:
        await stream.aclose()


def _reassemble(deltas: list[StreamDelta]) -> tuple[str, list[ToolCall], str | None, Usage | None]:
    text = "".join(d.content or "" for d in deltas)
    calls: dict[int, ToolCall] = {}
    finish = None
    usage = None
    for d in deltas:
        for tc in d.tool_calls or ():
            call = calls.setdefault(tc.index, ToolCall(id="", name="", arguments=""))
            call.id = tc.id or call.id
            call.name = tc.name or call.name
            call.arguments += tc.arguments
        finish = d.finish_reason or finish
        usage = d.usage or usage
    return text, [calls[i] for i in sorted(calls)], finish, usage


async def _error_of(awaitable: Any) -> UpstreamError:
    with pytest.raises(UpstreamError) as info:
        await awaitable
    return info.value


# --- answers ----------------------------------------------------------------------------------


async def test_plain_answer(sim: Simulator, client: UpstreamClient, kind: str) -> None:
    resp = await _complete(client, _dep(sim, kind, "sim-small"), _ask())
    assert resp.content is not None and "2 + 2 = 4" in resp.content
    assert resp.finish_reason == "stop"
    assert resp.tool_calls == []
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0


async def test_streamed_answer_reassembles_to_the_plain_one(
    sim: Simulator, client: UpstreamClient, kind: str
) -> None:
    dep = _dep(sim, kind, "sim-small")
    plain = await _complete(client, dep, _ask("Tell me about the sea."))
    stream = await _open(client, dep, _ask("Tell me about the sea."))
    assert stream.status == 200
    deltas = await _collect(stream)
    assert len([d for d in deltas if d.content]) > 1  # really streamed
    text, calls, finish, usage = _reassemble(deltas)
    assert text == plain.content
    assert calls == []
    assert finish == "stop"
    assert usage == plain.usage
    assert deltas[0].id  # the response id rides on the first delta
    await stream.aclose()  # second close is harmless


async def test_tool_call(sim: Simulator, client: UpstreamClient, kind: str) -> None:
    dep = _dep(sim, kind, "sim-small")
    req = _ask("Weather in Paris?", tools=[WEATHER], tool_choice="required")
    resp = await _complete(client, dep, req)
    assert resp.finish_reason == "tool_calls"
    [call] = resp.tool_calls
    assert call.name == "get_weather" and call.id
    args = orjson.loads(call.arguments)
    assert isinstance(args, dict) and isinstance(args["city"], str)

    deltas = await _collect(await _open(client, dep, req))
    _, calls, finish, usage = _reassemble(deltas)
    assert finish == "tool_calls"
    [streamed] = calls
    assert streamed.name == "get_weather" and streamed.id
    assert orjson.loads(streamed.arguments) == args
    assert usage is not None and usage.completion_tokens > 0


async def test_usage_reports_cached_tokens(
    sim: Simulator, client: UpstreamClient, kind: str
) -> None:
    dep = _dep(sim, kind, "sim-cached2048")
    resp = await _complete(client, dep, _ask())
    assert resp.usage.cached_tokens == 2048
    assert resp.usage.prompt_tokens >= 2048  # prompt_tokens counts every input token
    _, _, _, usage = _reassemble(await _collect(await _open(client, dep, _ask())))
    assert usage == resp.usage


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("streamed", [False, True])
async def test_429_is_rate_limit_with_retry_after(
    sim: Simulator, client: UpstreamClient, kind: str, streamed: bool
) -> None:
    dep = _dep(sim, kind, "sim-429")
    call = _open(client, dep, _ask()) if streamed else _complete(client, dep, _ask())
    err = await _error_of(call)
    assert (err.kind, err.status, err.retry_after) == ("rate_limit", 429, 1.0)
    assert err.retryable and err.message


@pytest.mark.parametrize(("status", "expected"), [(500, "server"), (503, "overloaded")])
async def test_5xx(
    sim: Simulator, client: UpstreamClient, kind: str, status: int, expected: str
) -> None:
    dep = _dep(sim, kind, f"sim-{status}")
    for call in (_complete(client, dep, _ask()), _open(client, dep, _ask())):
        err = await _error_of(call)
        assert (err.kind, err.status) == (expected, status)


async def test_bad_key_is_auth(sim: Simulator, client: UpstreamClient, kind: str) -> None:
    dep = _dep(sim, kind, "sim-small")
    dep.api_key = "invalid"
    err = await _error_of(_complete(client, dep, _ask()))
    assert (err.kind, err.status, err.retryable) == ("auth", 401, False)


async def test_timeouts(sim: Simulator, client: UpstreamClient, kind: str) -> None:
    quick = Timeouts(connect=1.0, first_token=0.2, total=0.3)
    dep = _dep(sim, kind, "sim-timeout")
    assert (await _error_of(_complete(client, dep, _ask(), quick))).kind == "timeout"
    assert (await _error_of(_open(client, dep, _ask(), quick))).kind == "timeout"
    # headers arrive at once, the first chunk too late: the first-token deadline applies
    slow_start = _dep(sim, kind, "sim-ttft1000")
    stream = await _open(client, slow_start, _ask(), Timeouts(first_token=0.2, total=5.0))
    err = await _error_of(_collect(stream))
    assert err.kind == "timeout" and "first token" in err.message


async def test_connection_reset_and_refused(
    sim: Simulator, client: UpstreamClient, kind: str
) -> None:
    dep = _dep(sim, kind, "sim-reset")
    assert (await _error_of(_complete(client, dep, _ask()))).kind == "connection"
    assert (await _error_of(_open(client, dep, _ask()))).kind == "connection"
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = _dep(sim, kind, "sim-small", base_url=f"http://127.0.0.1:{port}/v1")
    assert (await _error_of(_complete(client, closed, _ask()))).kind == "connection"


async def test_stream_cut_midway_is_bad_response(
    sim: Simulator, client: UpstreamClient, kind: str
) -> None:
    dep = _dep(sim, kind, "sim-cut")
    stream = await _open(client, dep, _ask("Tell me a long story about ships and the sea."))
    received: list[StreamDelta] = []
    with pytest.raises(UpstreamError) as info:
        async for delta in stream:
            received.append(delta)
    assert (info.value.kind, info.value.message) == ("bad_response", STREAM_CUT)
    assert received  # the cut came after some content
    await stream.aclose()
    # non-streamed: a body cut short is a broken answer too, never a half answer
    err = await _error_of(_complete(client, dep, _ask()))
    assert err.kind == "bad_response" and err.retryable


async def test_malformed_json_is_bad_response(
    sim: Simulator, client: UpstreamClient, kind: str
) -> None:
    dep = _dep(sim, kind, "sim-malformed")
    assert (await _error_of(_complete(client, dep, _ask()))).kind == "bad_response"
    stream = await _open(client, dep, _ask())
    assert (await _error_of(_collect(stream))).kind == "bad_response"
