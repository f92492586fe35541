"""Anthropic Messages adapter: pure translation tests on real-shaped payloads."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from modelmix.errors import UnsupportedParameter, UpstreamError
from modelmix.providers.base import Deployment, SSEEvent
from modelmix.providers.registry import get_adapter
from modelmix.types import Capabilities, ChatRequest, StreamDelta, Usage
from modelmix.wire.anthropic_messages.upstream import ADAPTER, DEFAULT_MAX_TOKENS

DEP = Deployment(
    id="claude#0",
    model="claude",
    provider="anthropic",
    upstream_model="claude-sonnet-4-5",
    base_url="https://api.anthropic.com/v1",
    api_key="sk-ant-test",
    headers={"anthropic-beta": "prompt-caching-2024-07-31"},
)

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def _body(req: ChatRequest, dep: Deployment = DEP) -> dict[str, Any]:
    http = ADAPTER.build_request(req, dep)
    result: dict[str, Any] = orjson.loads(http.body)
    return result


def test_registry_and_headers() -> None:
    assert get_adapter("anthropic") is ADAPTER
    http = ADAPTER.build_request(
        ChatRequest(model="claude", messages=[{"role": "user", "content": "hi"}]), DEP
    )
    assert http.url == "https://api.anthropic.com/v1/messages"
    assert http.headers["x-api-key"] == "sk-ant-test"
    assert http.headers["anthropic-version"] == "2023-06-01"
    assert http.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert "Authorization" not in http.headers


def test_full_conversation_translation() -> None:
    req = ChatRequest(
        model="claude",
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Paris and Oslo? See the map."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/map.jpg"}},
                ],
            },
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "toolu_01",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "toolu_02",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "toolu_01", "content": "18C sunny"},
            {"role": "tool", "tool_call_id": "toolu_02", "content": "4C rain"},
            {"role": "user", "content": "Thanks, which is warmer?"},
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        params={
            "max_tokens": 300,
            "temperature": 0.5,
            "top_p": 0.9,
            "top_k": 40,
            "stop": ["\n\nHuman:"],
            "user": "user-42",
            "parallel_tool_calls": False,
        },
    )
    body = _body(req)
    assert body["model"] == "claude-sonnet-4-5"
    assert body["system"] == [
        {"type": "text", "text": "You are helpful."},
        {"type": "text", "text": "Use metric units."},
    ]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris and Oslo? See the map."},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0K"},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/map.jpg"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
                {
                    "type": "tool_use",
                    "id": "toolu_02",
                    "name": "get_weather",
                    "input": {"city": "Oslo"},
                },
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_02", "content": "4C rain"},
                {"type": "text", "text": "Thanks, which is warmer?"},
            ],
        },
    ]
    assert body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert body["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
        "disable_parallel_tool_use": True,
    }
    assert body["max_tokens"] == 300
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.5, 0.9, 40)
    assert body["stop_sequences"] == ["\n\nHuman:"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert "stream" not in body


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("auto", {"type": "auto"}),
        ("required", {"type": "any"}),
        ("none", {"type": "none"}),
    ],
)
def test_tool_choice_mapping(choice: str, expected: dict[str, str]) -> None:
    req = ChatRequest(
        model="c",
        messages=[{"role": "user", "content": "x"}],
        tools=[WEATHER_TOOL],
        tool_choice=choice,
    )
    assert _body(req)["tool_choice"] == expected


def test_single_system_is_a_string_and_consecutive_users_merge() -> None:
    req = ChatRequest(
        model="c",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "one"},
            {"role": "user", "content": "two"},
        ],
        stream=True,
    )
    body = _body(req)
    assert body["system"] == "Be brief."
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        }
    ]
    assert body["stream"] is True


def test_max_tokens_default_and_cap() -> None:
    req = ChatRequest(model="c", messages=[{"role": "user", "content": "x"}])
    assert _body(req)["max_tokens"] == DEFAULT_MAX_TOKENS
    small = Deployment(
        id="h#0",
        model="h",
        provider="anthropic",
        upstream_model="claude-3-haiku",
        base_url="https://api.anthropic.com/v1",
        capabilities=Capabilities(max_output_tokens=1024),
    )
    assert _body(req, small)["max_tokens"] == 1024


@pytest.mark.parametrize(
    ("params", "fmt", "param"),
    [
        ({"n": 2}, None, "n"),
        ({"logprobs": True}, None, "logprobs"),
        ({"top_logprobs": 3}, None, "top_logprobs"),
        ({"seed": 1}, None, "seed"),
        ({"presence_penalty": 0.5}, None, "presence_penalty"),
        ({"frequency_penalty": -0.2}, None, "frequency_penalty"),
        ({"reasoning_effort": "high"}, None, "reasoning_effort"),
        ({}, {"type": "json_object"}, "response_format"),
        (
            {},
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            "response_format",
        ),
    ],
)
def test_unsupported_parameters_raise(
    params: dict[str, Any], fmt: dict[str, Any] | None, param: str
) -> None:
    req = ChatRequest(
        model="c", messages=[{"role": "user", "content": "x"}], params=params, response_format=fmt
    )
    with pytest.raises(UnsupportedParameter) as info:
        ADAPTER.check(req, DEP)
    assert info.value.param == param
    with pytest.raises(UnsupportedParameter):
        ADAPTER.build_request(req, DEP)


def test_noop_values_are_accepted() -> None:
    req = ChatRequest(
        model="c",
        messages=[{"role": "user", "content": "x"}],
        params={"n": 1, "presence_penalty": 0, "frequency_penalty": 0.0, "logprobs": False},
        response_format={"type": "text"},
    )
    ADAPTER.check(req, DEP)


def _user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


@pytest.mark.parametrize(
    ("messages", "needle"),
    [
        (
            _user({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
            "input_audio",
        ),
        (_user({"type": "file", "file": {"file_data": "AAAA"}}), "file"),
        (_user({"type": "image_url", "image_url": {"url": "data:image/png,rawbytes"}}), "base64"),
        ([{"role": "system", "content": "You are terse."}], "besides the system prompt"),
        (
            [{"role": "system", "content": "x"}, {"role": "user", "content": ""}],
            "besides the system prompt",
        ),
    ],
    ids=["audio", "file", "raw-data-url", "system-only", "system-and-empty-user"],
)
def test_check_screens_message_content_the_translation_would_refuse(
    messages: list[dict[str, Any]], needle: str
) -> None:
    req = ChatRequest(model="c", messages=messages)
    with pytest.raises(UnsupportedParameter) as info:
        ADAPTER.check(req, DEP)
    assert info.value.param == "messages" and needle in info.value.reason
    with pytest.raises(UnsupportedParameter):  # the translation refuses it too
        ADAPTER.build_request(req, DEP)


def test_check_accepts_what_the_translation_sends() -> None:
    messages = [
        {"role": "system", "content": [{"type": "text", "text": "Be terse."}]},
        *_user(
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
        ),
    ]
    req = ChatRequest(model="c", messages=messages)
    ADAPTER.check(req, DEP)
    ADAPTER.build_request(req, DEP)


def test_parse_response_text_tool_use_and_cache_usage() -> None:
    body = {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "Let me check "},
            {"type": "text", "text": "the weather."},
            {
                "type": "tool_use",
                "id": "toolu_01A09q90qw90lq917835lq9",
                "name": "get_weather",
                "input": {"city": "San Francisco", "unit": "celsius"},
            },
        ],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 50,
            "cache_creation_input_tokens": 200,
            "cache_read_input_tokens": 1000,
            "output_tokens": 80,
        },
    }
    resp = ADAPTER.parse_response(orjson.dumps(body))
    assert resp.id == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert resp.model == "claude-sonnet-4-5-20250929"
    assert resp.content == "Let me check the weather."
    assert resp.finish_reason == "tool_calls"
    [call] = resp.tool_calls
    assert (call.id, call.name) == ("toolu_01A09q90qw90lq917835lq9", "get_weather")
    assert orjson.loads(call.arguments) == {"city": "San Francisco", "unit": "celsius"}
    assert resp.usage == Usage(
        prompt_tokens=1250, completion_tokens=80, cached_tokens=1000, cache_write_tokens=200
    )


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_stop_reasons(reason: str, finish: str) -> None:
    body = {
        "id": "m",
        "model": "c",
        "content": [{"type": "text", "text": "x"}],
        "stop_reason": reason,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }
    assert ADAPTER.parse_response(orjson.dumps(body)).finish_reason == finish


def test_parse_response_malformed() -> None:
    for body in (b"{oops", b'{"id": "m", "content": 5}'):
        with pytest.raises(UpstreamError) as info:
            ADAPTER.parse_response(body)
        assert info.value.kind == "bad_response"


def _events(pairs: list[tuple[str, dict[str, Any]]]) -> tuple[list[StreamDelta], bool]:
    parser = ADAPTER.stream_parser()
    out: list[StreamDelta] = []
    for name, data in pairs:
        out.extend(parser.feed(SSEEvent(data=orjson.dumps(data).decode(), event=name)))
    return out, parser.finished()


def _message_start() -> tuple[str, dict[str, Any]]:
    return (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5",
                "content": [],
                "stop_reason": None,
                "usage": {
                    "input_tokens": 25,
                    "cache_read_input_tokens": 100,
                    "cache_creation_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        },
    )


def test_stream_text_and_tool_use() -> None:
    deltas, finished = _events(
        [
            _message_start(),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            ),
            ("ping", {"type": "ping"}),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "text_delta", "text": "Okay"},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 1,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_9",
                        "name": "get_weather",
                        "input": {},
                    },
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": '{"city": '},
                },
            ),
            (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": '"Rome"}'},
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 1}),
            (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 2,
                    "content_block": {
                        "type": "tool_use",
                        "id": "toolu_10",
                        "name": "now",
                        "input": {},
                    },
                },
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": 2}),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                    "usage": {"output_tokens": 42},
                },
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
    )
    assert finished
    assert deltas[0].id == "msg_1" and deltas[0].model == "claude-sonnet-4-5"
    assert "".join(d.content or "" for d in deltas) == "Okay"
    calls = [tc for d in deltas for tc in d.tool_calls or ()]
    # index is the tool-call ordinal (0, 1), not the content block index (1, 2)
    assert [(c.index, c.id, c.name) for c in calls if c.id] == [
        (0, "toolu_9", "get_weather"),
        (1, "toolu_10", "now"),
    ]
    assert "".join(c.arguments for c in calls if c.index == 0) == '{"city": "Rome"}'
    assert "".join(c.arguments for c in calls if c.index == 1) == "{}"
    last = deltas[-1]
    assert last.finish_reason == "tool_calls"
    assert last.usage == Usage(prompt_tokens=125, completion_tokens=42, cached_tokens=100)


def test_stream_usage_merges_partial_counters() -> None:
    """A message_delta that repeats input_tokens must not erase message_start's cache counts."""
    deltas, _ = _events(
        [
            _message_start(),
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": "end_turn"},
                    "usage": {"input_tokens": 25, "output_tokens": 7},
                },
            ),
        ]
    )
    assert deltas[-1].usage == Usage(prompt_tokens=125, completion_tokens=7, cached_tokens=100)
    assert deltas[-1].finish_reason == "stop"


def test_stream_not_finished_before_message_stop() -> None:
    _, finished = _events([_message_start()])
    assert not finished


@pytest.mark.parametrize(
    ("etype", "kind"), [("overloaded_error", "overloaded"), ("api_error", "server")]
)
def test_stream_error_event(etype: str, kind: str) -> None:
    parser = ADAPTER.stream_parser()
    data = orjson.dumps({"type": "error", "error": {"type": etype, "message": "Overloaded"}})
    with pytest.raises(UpstreamError) as info:
        parser.feed(SSEEvent(data=data.decode(), event="error"))
    assert info.value.kind == kind
    assert info.value.message == "Overloaded"


@pytest.mark.parametrize(
    ("status", "etype", "kind"),
    [
        (400, "invalid_request_error", "invalid_request"),
        (401, "authentication_error", "auth"),
        (403, "permission_error", "auth"),
        (404, "not_found_error", "invalid_request"),
        (413, "request_too_large", "invalid_request"),
        (429, "rate_limit_error", "rate_limit"),
        (500, "api_error", "server"),
        (529, "overloaded_error", "overloaded"),
    ],
)
def test_parse_error(status: int, etype: str, kind: str) -> None:
    body = orjson.dumps({"type": "error", "error": {"type": etype, "message": f"{etype}!"}})
    err = ADAPTER.parse_error(status, body, {"retry-after": "7"} if status == 429 else {})
    assert (err.kind, err.status, err.message) == (kind, status, f"{etype}!")
    if status == 429:
        assert err.retry_after == 7.0


def test_parse_error_non_json_body() -> None:
    err = ADAPTER.parse_error(502, b"Bad Gateway", {})
    assert (err.kind, err.message) == ("server", "Bad Gateway")
