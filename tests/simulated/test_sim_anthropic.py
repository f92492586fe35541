"""The simulated Anthropic Messages API, driven by the official ``anthropic`` SDK."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import anthropic
import httpx2
import pytest

from modelmix.simulated import Simulator

USER: Any = [{"role": "user", "content": "What is 2+2?"}]
WEATHER: Any = {
    "name": "get_weather",
    "description": "Current weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 3}},
        "required": ["city", "days"],
    },
}
HEADERS = {"anthropic-version": "2023-06-01", "x-api-key": "x"}


def client(sim: Simulator, key: str = "x", timeout: float = 5.0) -> anthropic.AsyncAnthropic:
    # the SDK appends /v1/messages to its base URL
    return anthropic.AsyncAnthropic(
        base_url=sim.url + "/anthropic", api_key=key, max_retries=0, timeout=timeout
    )


async def raw_post(sim: Simulator, body: Any, headers: dict[str, str] = HEADERS) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim.base_url("anthropic") + "/messages", json=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def test_plain_answer(sim: Simulator) -> None:
    m = await client(sim).messages.create(model="sim-medium", max_tokens=100, messages=USER)
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_")
    assert m.model == "sim-medium"
    assert len(m.content) == 1 and m.content[0].type == "text"
    assert m.content[0].text == "[simulated sim-medium] 2 + 2 = 4"
    assert m.stop_reason == "end_turn" and m.stop_sequence is None
    assert (m.usage.input_tokens, m.usage.output_tokens) == (3, 8)
    assert m.usage.cache_read_input_tokens == 0 and m.usage.cache_creation_input_tokens == 0


async def test_system_counts_toward_input(sim: Simulator) -> None:
    m = await client(sim).messages.create(
        model="sim-medium", max_tokens=100, system="x" * 40, messages=USER
    )
    assert m.usage.input_tokens == 13


async def test_stream_events(sim: Simulator) -> None:
    async with client(sim).messages.stream(
        model="sim-small",
        max_tokens=100,
        messages=[{"role": "user", "content": "Tell me about the sea."}],
    ) as stream:
        events = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_start" in events and "content_block_stop" in events
    assert events.count("content_block_delta") > 5
    text = final.content[0].text  # type: ignore[union-attr]
    assert text.startswith("[simulated sim-small] You said")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == (len(text) + 3) // 4


async def test_raw_stream_wire_format(sim: Simulator) -> None:
    body = {"model": "sim-small", "max_tokens": 50, "messages": USER, "stream": True}
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim.base_url("anthropic") + "/messages", json=body, headers=HEADERS) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        raw = (await resp.read()).decode()
    events = [e for e in raw.split("\n\n") if e]
    names = []
    for event in events:
        name_line, data_line = event.split("\n")
        name = name_line.removeprefix("event: ")
        assert json.loads(data_line.removeprefix("data: "))["type"] == name
        names.append(name)
    assert names[:3] == ["message_start", "content_block_start", "ping"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]


async def test_tool_use(sim: Simulator) -> None:
    m = await client(sim).messages.create(
        model="sim-small", max_tokens=100, tools=[WEATHER], messages=USER
    )
    assert m.stop_reason == "tool_use"
    block: Any = m.content[0]
    assert block.type == "tool_use" and block.id.startswith("toolu_")
    assert block.name == "get_weather" and block.input == {"city": "Paris", "days": 3}


async def test_tool_choice(sim: Simulator) -> None:
    other: Any = {"name": "lookup", "input_schema": {"type": "object", "properties": {}}}
    c = client(sim)
    forced = await c.messages.create(
        model="sim-small",
        max_tokens=100,
        tools=[WEATHER, other],
        tool_choice={"type": "tool", "name": "lookup"},
        messages=USER,
    )
    assert forced.content[0].type == "tool_use" and forced.content[0].name == "lookup"
    none = await c.messages.create(
        model="sim-small",
        max_tokens=100,
        tools=[WEATHER],
        tool_choice={"type": "none"},
        messages=USER,
    )
    assert none.content[0].type == "text" and none.stop_reason == "end_turn"


async def test_streamed_tool_use_arrives_as_input_json_deltas(sim: Simulator) -> None:
    async with client(sim).messages.stream(
        model="sim-small", max_tokens=100, tools=[WEATHER], messages=USER
    ) as stream:
        partials = [
            e.delta.partial_json  # type: ignore[union-attr]
            async for e in stream
            if e.type == "content_block_delta"
        ]
        final = await stream.get_final_message()
    assert len([p for p in partials if p]) >= 2
    assert json.loads("".join(partials)) == {"city": "Paris", "days": 3}
    assert final.stop_reason == "tool_use"
    assert final.content[0].input == {"city": "Paris", "days": 3}  # type: ignore[union-attr]


async def test_after_a_tool_result_the_answer_is_text(sim: Simulator) -> None:
    messages: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}],
        },
    ]
    m = await client(sim).messages.create(
        model="sim-small", max_tokens=100, tools=[WEATHER], messages=messages
    )
    assert m.stop_reason == "end_turn"
    text = m.content[0].text  # type: ignore[union-attr]
    assert "get_weather" in text and "sunny" in text


async def test_max_tokens_and_stop_sequences(sim: Simulator) -> None:
    c = client(sim)
    cut = await c.messages.create(model="sim-small", max_tokens=2, messages=USER)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 2
    assert cut.content[0].text == "[simulat"  # type: ignore[union-attr]
    stopped = await c.messages.create(
        model="sim-small", max_tokens=100, stop_sequences=["="], messages=USER
    )
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "="
    assert stopped.content[0].text == "[simulated sim-small] 2 + 2 "  # type: ignore[union-attr]


async def test_cached_tokens(sim: Simulator) -> None:
    m = await client(sim).messages.create(model="sim-cached100", max_tokens=10, messages=USER)
    assert m.usage.cache_read_input_tokens == 100 and m.usage.input_tokens == 3


async def test_structured_output(sim: Simulator) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    status, body = await raw_post(
        sim,
        {
            "model": "sim-small",
            "max_tokens": 100,
            "messages": USER,
            "output_format": {"type": "json_schema", "schema": schema},
        },
    )
    assert status == 200 and json.loads(body["content"][0]["text"]) == {"n": 1}


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "error", "kind"),
    [
        ("sim-429", anthropic.RateLimitError, "rate_limit_error"),
        ("sim-500", anthropic.InternalServerError, "api_error"),
        ("sim-529", anthropic.OverloadedError, "overloaded_error"),
    ],
)
async def test_status_errors(
    sim: Simulator, model: str, error: type[anthropic.APIStatusError], kind: str
) -> None:
    with pytest.raises(error) as info:
        await client(sim).messages.create(model=model, max_tokens=10, messages=USER)
    body: Any = info.value.body
    assert body["type"] == "error" and body["error"]["type"] == kind
    if model == "sim-429":
        assert info.value.response.headers["retry-after"] == "1"


async def test_invalid_key(sim: Simulator) -> None:
    with pytest.raises(anthropic.AuthenticationError) as info:
        await client(sim, key="invalid").messages.create(model="m", max_tokens=10, messages=USER)
    body: Any = info.value.body
    assert body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "m", "messages": USER}, "max_tokens: Field required"),
        ({"model": "m", "max_tokens": 5}, "messages: Field required"),
        ({"max_tokens": 5, "messages": USER}, "model: Field required"),
        ({"model": "m", "max_tokens": 5, "messages": []}, "at least one message"),
        (
            {"model": "m", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]},
            'Unexpected role "system"',
        ),
    ],
)
async def test_validation(sim: Simulator, body: Any, message: str) -> None:
    status, answer = await raw_post(sim, body)
    assert status == 400
    assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert message in answer["error"]["message"]


async def test_anthropic_version_header_is_required(sim: Simulator) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": USER}
    status, answer = await raw_post(sim, body, headers={"x-api-key": "x"})
    assert status == 400 and "anthropic-version" in answer["error"]["message"]


async def test_bad_request_in_the_sdk(sim: Simulator) -> None:
    with pytest.raises(anthropic.BadRequestError):
        await client(sim).messages.create(model="m", max_tokens=10, messages=[])


async def test_reset_and_cut(sim: Simulator) -> None:
    c = client(sim)
    with pytest.raises(anthropic.APIConnectionError):
        await c.messages.create(model="sim-reset", max_tokens=10, messages=USER)
    with pytest.raises(anthropic.APIConnectionError):
        await c.messages.create(model="sim-cut", max_tokens=10, messages=USER)
    events = []
    # mid-stream, the SDK lets its HTTP library's ReadError through unwrapped
    with pytest.raises((anthropic.APIConnectionError, httpx2.ReadError)):
        async with c.messages.stream(model="sim-cut", max_tokens=100, messages=USER) as stream:
            async for event in stream:
                events.append(event.type)
    assert events and "message_stop" not in events


async def test_malformed_stream(sim: Simulator) -> None:
    with pytest.raises(json.JSONDecodeError):
        async with client(sim).messages.stream(
            model="sim-malformed", max_tokens=100, messages=USER
        ) as stream:
            async for _ in stream:
                pass


async def test_timeout(sim: Simulator) -> None:
    started = time.monotonic()
    with pytest.raises(anthropic.APITimeoutError):
        await client(sim, timeout=0.3).messages.create(
            model="sim-timeout", max_tokens=10, messages=USER
        )
    assert time.monotonic() - started < 2


async def test_flaky(sim: Simulator) -> None:
    c = client(sim)
    with pytest.raises(anthropic.InternalServerError):
        await c.messages.create(model="sim-flaky1", max_tokens=10, messages=USER)
    ok = await c.messages.create(model="sim-flaky1", max_tokens=10, messages=USER)
    assert ok.stop_reason in ("end_turn", "max_tokens")


async def test_models_list(sim: Simulator) -> None:
    page = await client(sim).models.list()
    assert [m.id for m in page.data] == ["sim-small", "sim-medium", "sim-large"]
