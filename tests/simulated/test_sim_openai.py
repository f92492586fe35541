"""The simulated OpenAI Chat Completions API, driven by the official ``openai`` SDK."""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
import openai
import pytest

from modelmix.simulated import Simulator

USER: Any = [{"role": "user", "content": "What is 2+2?"}]
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city", "days"],
        },
    },
}
OTHER: Any = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}


def client(sim: Simulator, key: str = "x", timeout: float = 5.0) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=sim.base_url("openai"), api_key=key, max_retries=0, timeout=timeout
    )


async def test_plain_answer(sim: Simulator) -> None:
    r = await client(sim).chat.completions.create(model="sim-small", messages=USER)
    assert r.object == "chat.completion" and r.id.startswith("chatcmpl-")
    assert r.model == "sim-small"
    choice = r.choices[0]
    assert choice.message.content == "[simulated sim-small] 2 + 2 = 4"
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert r.usage is not None
    assert r.usage.prompt_tokens == 3  # "What is 2+2?" = 12 chars
    assert r.usage.completion_tokens == 8  # 31 chars
    assert r.usage.total_tokens == 11
    assert sim.calls["sim-small"] == 1
    assert sim.requests[-1].body["messages"] == USER


async def test_answers_are_deterministic_and_echo_the_question(sim: Simulator) -> None:
    messages: Any = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Tell me about the sea."},
    ]
    c = client(sim)
    first = await c.chat.completions.create(model="sim-large", messages=messages)
    second = await c.chat.completions.create(model="sim-large", messages=messages)
    text = first.choices[0].message.content
    assert text == second.choices[0].message.content
    assert text is not None and text.startswith("[simulated sim-large] ")
    assert "Tell me about the sea." in text


async def test_stream_with_usage(sim: Simulator) -> None:
    stream = await client(sim).chat.completions.create(
        model="sim-small",
        messages=[{"role": "user", "content": "Tell me about the sea."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("[simulated sim-small] You said")
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 5
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and finishes.count("stop") == 1
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == (len(text) + 3) // 4
    assert all(c.usage is None for c in chunks[:-1])


async def test_stream_without_usage_has_no_usage_chunk(sim: Simulator) -> None:
    stream = await client(sim).chat.completions.create(
        model="sim-small", messages=USER, stream=True
    )
    chunks = [chunk async for chunk in stream]
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_raw_stream_ends_with_done(sim: Simulator) -> None:
    body = {"model": "sim-small", "messages": USER, "stream": True}
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim.base_url("openai") + "/chat/completions", json=body) as resp,
    ):
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["X-Modelmix-Simulated"] == "true"
        raw = (await resp.read()).decode()
    events = [e for e in raw.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["choices"][0]["delta"]["role"] == "assistant"


async def test_tool_call(sim: Simulator) -> None:
    r = await client(sim).chat.completions.create(
        model="sim-small",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER, OTHER],
    )
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call: Any = calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris", "days": 1}


async def test_forced_tool_and_tool_choice_none(sim: Simulator) -> None:
    c = client(sim)
    forced = await c.chat.completions.create(
        model="sim-small",
        messages=USER,
        tools=[WEATHER, OTHER],
        tool_choice={"type": "function", "function": {"name": "lookup"}},
    )
    calls: Any = forced.choices[0].message.tool_calls
    assert calls[0].function.name == "lookup" and calls[0].function.arguments == "{}"
    none = await c.chat.completions.create(
        model="sim-small", messages=USER, tools=[WEATHER], tool_choice="none"
    )
    assert none.choices[0].message.content == "[simulated sim-small] 2 + 2 = 4"


async def test_streamed_tool_call_arrives_in_fragments(sim: Simulator) -> None:
    stream = await client(sim).chat.completions.create(
        model="sim-small", messages=USER, tools=[WEATHER], stream=True
    )
    chunks = [chunk async for chunk in stream]
    deltas = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas[0].id is not None and deltas[0].function is not None
    assert deltas[0].function.name == "get_weather"
    fragments = [d.function.arguments for d in deltas if d.function and d.function.arguments]
    assert len(fragments) >= 2
    assert json.loads("".join(fragments)) == {"city": "Paris", "days": 1}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_after_a_tool_result_the_answer_is_text(sim: Simulator) -> None:
    messages: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    ]
    r = await client(sim).chat.completions.create(
        model="sim-small", messages=messages, tools=[WEATHER]
    )
    text = r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert text is not None and "get_weather" in text and "sunny, 21C" in text


async def test_json_object_and_json_schema(sim: Simulator) -> None:
    c = client(sim)
    r = await c.chat.completions.create(
        model="sim-small", messages=USER, response_format={"type": "json_object"}
    )
    answer = json.loads(r.choices[0].message.content or "")
    assert answer["simulated"] is True and answer["answer"] == "2 + 2 = 4"
    schema = {
        "type": "object",
        "properties": {
            "sum": {"type": "integer"},
            "words": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["sum", "words"],
        "additionalProperties": False,
    }
    r = await c.chat.completions.create(
        model="sim-small",
        messages=USER,
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "result", "schema": schema, "strict": True},
        },
    )
    value = json.loads(r.choices[0].message.content or "")
    assert isinstance(value["sum"], int) and isinstance(value["words"], list)
    assert set(value) == {"sum", "words"}


async def test_max_tokens_and_stop(sim: Simulator) -> None:
    c = client(sim)
    cut = await c.chat.completions.create(model="sim-small", messages=USER, max_tokens=2)
    assert cut.choices[0].finish_reason == "length"
    assert cut.choices[0].message.content == "[simulat"
    assert cut.usage is not None and cut.usage.completion_tokens == 2
    newer = await c.chat.completions.create(
        model="sim-small", messages=USER, max_completion_tokens=1
    )
    assert newer.choices[0].message.content == "[sim"
    stopped = await c.chat.completions.create(model="sim-small", messages=USER, stop=["="])
    assert stopped.choices[0].finish_reason == "stop"
    assert stopped.choices[0].message.content == "[simulated sim-small] 2 + 2 "


async def test_logprobs(sim: Simulator) -> None:
    c = client(sim)
    r = await c.chat.completions.create(
        model="sim-small", messages=USER, logprobs=True, top_logprobs=2
    )
    logprobs = r.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    assert "".join(t.token for t in logprobs.content) == r.choices[0].message.content
    assert all(t.logprob < 0 and len(t.top_logprobs) == 2 for t in logprobs.content)
    plain = await c.chat.completions.create(model="sim-small", messages=USER)
    assert plain.choices[0].logprobs is None
    stream = await c.chat.completions.create(
        model="sim-small", messages=USER, logprobs=True, stream=True
    )
    pieces = [
        chunk.choices[0].logprobs.content
        async for chunk in stream
        if chunk.choices[0].delta.content and chunk.choices[0].logprobs
    ]
    assert pieces and all(p is not None and len(p) == 1 for p in pieces)


async def test_cached_tokens(sim: Simulator) -> None:
    r = await client(sim).chat.completions.create(model="sim-cached100", messages=USER)
    assert r.usage is not None and r.usage.prompt_tokens_details is not None
    assert r.usage.prompt_tokens_details.cached_tokens == 100
    assert r.usage.prompt_tokens == 103


async def test_refusal(sim: Simulator) -> None:
    r = await client(sim).chat.completions.create(model="sim-refuse", messages=USER)
    assert "can't help" in (r.choices[0].message.content or "")


async def test_models_list(sim: Simulator) -> None:
    page = await client(sim).models.list()
    assert [m.id for m in page.data] == ["sim-small", "sim-medium", "sim-large"]


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "error", "status"),
    [
        ("sim-429", openai.RateLimitError, 429),
        ("sim-500", openai.InternalServerError, 500),
        ("sim-503", openai.InternalServerError, 503),
        ("sim-529", openai.InternalServerError, 529),
    ],
)
async def test_status_errors(
    sim: Simulator, model: str, error: type[openai.APIStatusError], status: int
) -> None:
    with pytest.raises(error) as info:
        await client(sim).chat.completions.create(model=model, messages=USER)
    assert info.value.status_code == status
    body: Any = info.value.body
    assert set(body) == {"message", "type", "param", "code"}
    if status == 429:
        assert info.value.response.headers["retry-after"] == "1"
        assert body["code"] == "rate_limit_exceeded"


async def test_streamed_request_errors_before_the_stream(sim: Simulator) -> None:
    with pytest.raises(openai.RateLimitError):
        await client(sim).chat.completions.create(model="sim-429", messages=USER, stream=True)


async def test_invalid_key(sim: Simulator) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        await client(sim, key="invalid").chat.completions.create(model="m", messages=USER)
    body: Any = info.value.body
    assert body["code"] == "invalid_api_key"


async def test_no_key_at_all_is_fine(sim: Simulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            sim.base_url("openai") + "/chat/completions",
            json={"model": "sim-small", "messages": USER},
        ) as resp,
    ):
        assert resp.status == 200


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "m"}, "messages"),
        ({"model": "m", "messages": []}, "messages"),
        ({"messages": USER}, "model"),
        ({"model": "m", "messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"model": "m", "messages": USER, "max_tokens": 0}, "max_tokens"),
        ({"model": "m", "messages": USER, "tool_choice": "auto"}, "tool_choice"),
        ({"model": "m", "messages": USER, "stream_options": {}}, "stream_options"),
    ],
)
async def test_validation(sim: Simulator, body: dict[str, Any], param: str) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim.base_url("openai") + "/chat/completions", json=body) as resp,
    ):
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param


async def test_invalid_json_body(sim: Simulator) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(sim.base_url("openai") + "/chat/completions", data=b"{nope") as resp,
    ):
        assert resp.status == 400
        assert "parse the JSON" in (await resp.json())["error"]["message"]


async def test_missing_messages_is_a_bad_request_in_the_sdk(sim: Simulator) -> None:
    with pytest.raises(openai.BadRequestError):
        await client(sim).chat.completions.create(model="m", messages=[])


@pytest.mark.parametrize("stream", [False, True])
async def test_reset_is_a_connection_error(sim: Simulator, stream: bool) -> None:
    with pytest.raises(openai.APIConnectionError):
        await client(sim).chat.completions.create(model="sim-reset", messages=USER, stream=stream)


async def test_cut_body_is_a_connection_error(sim: Simulator) -> None:
    with pytest.raises(openai.APIConnectionError):
        await client(sim).chat.completions.create(model="sim-cut", messages=USER)


async def test_cut_stream_breaks_off_without_done(sim: Simulator) -> None:
    stream = await client(sim).chat.completions.create(
        model="sim-cut", messages=[{"role": "user", "content": "Tell me a story"}], stream=True
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk)
    assert received and all(c.choices[0].finish_reason is None for c in received)


async def test_malformed(sim: Simulator) -> None:
    with pytest.raises(json.JSONDecodeError):
        await client(sim).chat.completions.create(model="sim-malformed", messages=USER)
    stream = await client(sim).chat.completions.create(
        model="sim-malformed", messages=USER, stream=True
    )
    with pytest.raises(json.JSONDecodeError):
        async for _ in stream:
            pass


async def test_timeout(sim: Simulator) -> None:
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client(sim, timeout=0.3).chat.completions.create(model="sim-timeout", messages=USER)
    assert time.monotonic() - started < 2


async def test_flaky_fails_n_times_then_succeeds_and_reset_restarts(sim: Simulator) -> None:
    c = client(sim)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await c.chat.completions.create(model="sim-flaky2", messages=USER)
    ok = await c.chat.completions.create(model="sim-flaky2", messages=USER)
    assert ok.choices[0].message.content == "[simulated sim-flaky2] 2 + 2 = 4"
    # the counter is per exact model name
    with pytest.raises(openai.InternalServerError):
        await c.chat.completions.create(model="sim-flaky2-x", messages=USER)
    sim.reset()
    with pytest.raises(openai.InternalServerError):
        await c.chat.completions.create(model="sim-flaky2", messages=USER)


async def test_flaky_retried_by_the_sdk_succeeds(sim: Simulator) -> None:
    c = openai.AsyncOpenAI(base_url=sim.base_url("openai"), api_key="x", max_retries=3)
    r = await c.with_options(timeout=5).chat.completions.create(model="sim-flaky1", messages=USER)
    assert r.choices[0].finish_reason == "stop"
    assert sim.calls["sim-flaky1"] == 2


async def test_slow_and_ttft_delays(sim: Simulator) -> None:
    c = client(sim)
    started = time.monotonic()
    await c.chat.completions.create(model="sim-slow200", messages=USER)
    assert 0.19 < time.monotonic() - started < 1.5

    started = time.monotonic()
    stream = await c.chat.completions.create(model="sim-ttft300", messages=USER, stream=True)
    first_at = None
    async for _ in stream:
        if first_at is None:
            first_at = time.monotonic() - started
    total = time.monotonic() - started
    assert first_at is not None and 0.29 < first_at < 1.5
    assert total - first_at < 0.2  # only the first chunk waits

    started = time.monotonic()
    stream = await c.chat.completions.create(model="sim-slow20", messages=USER, stream=True)
    count = len([chunk async for chunk in stream])
    assert time.monotonic() - started >= 0.02 * count * 0.9
