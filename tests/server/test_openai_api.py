"""OpenAI wire format: requests from the real SDK parse; rendered bytes satisfy the real SDK."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from modelmix.errors import GatewayError
from modelmix.types import ChatResponse, StreamDelta, ToolCall, ToolCallDelta, Usage
from modelmix.wire.openai_chat.client import (
    ChatStreamRenderer,
    parse_chat_request,
    render_chat_response,
    render_error,
)

WEATHER_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _client(
    body: bytes, *, status: int = 200, sse: bool = False, seen: list[Any] | None = None
) -> openai.OpenAI:
    """An OpenAI SDK client whose every request is answered with ``body``."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        if seen is not None:
            seen.append(orjson.loads(request.content))
        ctype = "text/event-stream" if sse else "application/json"
        return httpx2.Response(status, content=body, headers={"content-type": ctype})

    return openai.OpenAI(
        api_key="sk-test",
        base_url="http://gateway.test/v1",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )


def _base(**extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra}


def _invalid(body: object) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        parse_chat_request(body)
    assert info.value.kind == "invalid_request"
    assert info.value.status == 400
    return info.value


# ------------------------------------------------------------------------------------ parsing


def test_request_sent_by_the_sdk_parses_to_canonical() -> None:
    seen: list[Any] = []
    reply = render_chat_response(ChatResponse(id="x", model="up", content="ok"), model="m")
    client = _client(reply, seen=seen)
    client.chat.completions.create(  # type: ignore[call-overload]
        model="gpt-x",
        messages=[
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "rain"},
        ],
        tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        response_format={"type": "json_object"},
        max_completion_tokens=50,
        temperature=0.5,
        top_p=0.9,
        stop="END",
        seed=7,
        user="u1",
        metadata={"team": "search"},
        parallel_tool_calls=False,
        store=False,
    )
    req = parse_chat_request(seen[0])
    assert req.model == "gpt-x"
    assert req.stream is False
    assert req.messages == seen[0]["messages"]
    assert req.tools == [WEATHER_TOOL]
    assert req.tool_choice == {"type": "function", "function": {"name": "get_weather"}}
    assert req.response_format == {"type": "json_object"}
    assert req.params == {
        "max_tokens": 50,
        "temperature": 0.5,
        "top_p": 0.9,
        "stop": ["END"],
        "seed": 7,
        "user": "u1",
        "parallel_tool_calls": False,
    }
    assert req.max_tokens_name == "max_completion_tokens"  # forwarded under this name
    assert req.metadata == {"team": "search"}


def test_max_tokens_name_remembers_what_the_client_sent() -> None:
    assert parse_chat_request(_base(max_tokens=5)).max_tokens_name == "max_tokens"
    assert parse_chat_request(_base()).max_tokens_name == "max_tokens"
    both = parse_chat_request(_base(max_tokens=5, max_completion_tokens=5))
    assert both.max_tokens_name == "max_completion_tokens" and both.params["max_tokens"] == 5


def test_stream_options_and_text_format() -> None:
    req = parse_chat_request(
        _base(
            stream=True,
            stream_options={"include_usage": True},
            response_format={"type": "text"},
            max_tokens=9,
            n=1,
            logit_bias={},
            modalities=["text"],
        )
    )
    assert req.stream is True and req.include_usage is True
    assert req.response_format is None
    assert req.params == {"max_tokens": 9}


def test_json_schema_format_is_kept() -> None:
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": {"type": "object"}, "strict": True},
    }
    assert parse_chat_request(_base(response_format=fmt)).response_format == fmt


def test_null_optional_params_are_unset() -> None:
    req = parse_chat_request(_base(temperature=None, tools=None, stop=None, audio=None))
    assert req.params == {} and req.tools is None


@pytest.mark.parametrize(
    "key", ["store", "service_tier", "prediction", "prompt_cache_key", "prompt_cache_options"]
)
def test_harmless_openai_keys_are_ignored(key: str) -> None:
    assert parse_chat_request(_base(**{key: "auto"})).params == {}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("audio", {"voice": "alloy", "format": "wav"}),
        ("web_search_options", {}),
        ("modalities", ["text", "audio"]),
        ("functions", [{"name": "f"}]),
        ("moderation", {"model": "omni-moderation-latest"}),
        ("n", 2),
    ],
)
def test_answer_changing_keys_are_rejected(key: str, value: object) -> None:
    err = _invalid(_base(**{key: value}))
    assert err.param == key
    assert key in err.message


def test_sdk_model_dump_of_a_message_is_accepted() -> None:
    """The SDK's own dump carries refusal/annotations/audio/function_call/tool_calls: None."""
    dumped = openai.types.chat.ChatCompletionMessage(role="assistant", content="4").model_dump()
    req = parse_chat_request(
        _base(
            messages=[{"role": "user", "content": "2+2"}, dumped, {"role": "user", "content": "ok"}]
        )
    )
    assert req.messages[1] == {"role": "assistant", "content": "4"}


@pytest.mark.parametrize(
    ("key", "value"),
    [("logit_bias", {"50256": -100}), ("verbosity", "low"), ("frobnicate", 1)],
)
def test_unknown_and_vendor_keys_are_kept_for_the_upstream(key: str, value: object) -> None:
    """Forward-compatible (issue 12): decided per model by wire/extensions.py, not here."""
    req = parse_chat_request(_base(**{key: value}, caller=None))
    assert req.unknown == {key: value}  # the null one is a client default: ignored
    assert req.native is not None and req.native.api == "openai"


def _with_message(msg: dict[str, Any]) -> dict[str, Any]:
    return _base(messages=[{"role": "user", "content": "hi"}, msg])


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ([], None, "JSON object"),
        ({"messages": [{"role": "user", "content": "x"}]}, "model", "Missing required"),
        ({"model": 3, "messages": []}, "model", "expected a string, but got an integer"),
        ({"model": "m"}, "messages", "Missing required"),
        (_base(messages=[]), "messages", "empty array"),
        (_base(messages="hi"), "messages", "expected an array"),
        (_base(messages=["hi"]), "messages[0]", "expected an object"),
        (_base(messages=[{"content": "x"}]), "messages[0].role", "Missing"),
        (_base(messages=[{"role": "robot", "content": "x"}]), "messages[0].role", "'robot'"),
        (_base(messages=[{"role": "function", "content": "x"}]), "messages[0].role", "tool"),
        (_base(messages=[{"role": "user"}]), "messages[0].content", "Missing"),
        (_with_message({"role": "user", "content": 5}), "messages[1].content", "integer"),
        (_with_message({"role": "user", "content": []}), "messages[1].content", "empty"),
        (
            _with_message({"role": "user", "content": [{"type": "video", "url": "x"}]}),
            "messages[1].content[0].type",
            "'video'",
        ),
        (
            _with_message({"role": "user", "content": [{"type": "text"}]}),
            "messages[1].content[0].text",
            "Missing",
        ),
        (
            _with_message({"role": "system", "content": [{"type": "image_url", "image_url": {}}]}),
            "messages[1].content[0].type",
            "'image_url'",
        ),
        (
            _with_message({"role": "user", "content": [{"type": "image_url", "image_url": {}}]}),
            "messages[1].content[0].image_url.url",
            "Missing",
        ),
        (
            _with_message(
                {"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "x"}}]}
            ),
            "messages[1].content[0].input_audio.format",
            "wav",
        ),
        (_with_message({"role": "assistant", "content": None}), "messages[1].content", "null"),
        (
            _with_message({"role": "assistant", "content": "x", "tool_calls": [{"id": "c"}]}),
            "messages[1].tool_calls[0].function",
            "Missing",
        ),
        (
            _with_message(
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f"}}],
                }
            ),
            "messages[1].tool_calls[0].function.arguments",
            "Missing",
        ),
        (_with_message({"role": "tool", "content": "x"}), "messages[1].tool_call_id", "Missing"),
        (
            _with_message({"role": "tool", "content": "x", "tool_call_id": "nope"}),
            "messages[1].role",
            "preceding message with 'tool_calls'",
        ),
        (_base(tools={"type": "function"}), "tools", "expected an array"),
        (_base(tools=[{"type": "custom", "custom": {}}]), "tools[0].type", "'custom'"),
        (_base(tools=[{"type": "function", "function": {}}]), "tools[0].function.name", "Missing"),
        (
            _base(tools=[{"type": "function", "function": {"name": "bad name"}}]),
            "tools[0].function.name",
            "pattern",
        ),
        (_base(tools=[WEATHER_TOOL, WEATHER_TOOL]), "tools[1].function.name", "duplicate"),
        (_base(tool_choice="sometimes"), "tool_choice", "'required'"),
        (_base(tool_choice="required"), "tool_choice", "tools"),
        (
            _base(
                tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "x"}}
            ),
            "tool_choice.function.name",
            "'x'",
        ),
        (_base(response_format={"type": "yaml"}), "response_format.type", "json_schema"),
        (
            _base(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
            "response_format.json_schema.name",
            "Missing",
        ),
        (
            _base(response_format={"type": "json_schema", "json_schema": {"name": "a"}}),
            "response_format.json_schema.schema",
            "Missing",
        ),
        (_base(temperature=2.5), "temperature", "<= 2"),
        (_base(temperature=-0.1), "temperature", ">= 0"),
        (_base(temperature="hot"), "temperature", "expected a decimal"),
        (_base(temperature=True), "temperature", "boolean"),
        (_base(top_p=1.5), "top_p", "<= 1"),
        (_base(n=0), "n", ">= 1"),
        (_base(max_tokens=0), "max_tokens", ">= 1"),
        (_base(max_completion_tokens=1.5), "max_completion_tokens", "integer"),
        (_base(max_tokens=5, max_completion_tokens=6), "max_tokens", "only one"),
        (_base(presence_penalty=3), "presence_penalty", "<= 2"),
        (_base(top_logprobs=3), "top_logprobs", "'logprobs'"),
        (_base(logprobs=True, top_logprobs=21), "top_logprobs", "<= 20"),
        (_base(stop=["a", 1]), "stop[1]", "string"),
        (_base(stop=["a", "b", "c", "d", "e"]), "stop", "at most 4"),
        (_base(stream="yes"), "stream", "boolean"),
        (_base(stream_options={"include_usage": True}), "stream_options", "stream"),
        (_base(metadata={"k": 1}), "metadata.k", "string"),
        (_base(metadata=[1]), "metadata", "object"),
        (_base(user=1), "user", "string"),
        (_base(reasoning_effort="extreme"), "reasoning_effort", "'low'"),
    ],
)
def test_validation_errors_name_the_param(body: object, param: str | None, fragment: str) -> None:
    err = _invalid(body)
    assert err.param == param
    assert fragment in err.message


@pytest.mark.parametrize(
    ("message", "path"),
    [
        ({"role": "assistant", "content": "x", "audio": {"id": "a1"}}, "messages.1.audio"),
        ({"role": "user", "content": "x", "tool_calls": [{"id": "c"}]}, "messages.1.tool_calls"),
    ],
)
def test_keys_a_message_does_not_have_are_unknown_fields(
    message: dict[str, Any], path: str
) -> None:
    """Kept by path for wire/extensions.py (an OpenAI-format upstream judges them itself)."""
    request = parse_chat_request(_with_message(message))
    assert request.unknown == {path: message[path.rsplit(".", 1)[1]]}
    assert request.native is not None and request.native.api == "openai"


def test_unanswered_tool_call_is_rejected() -> None:
    call = {"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = _base(
        messages=[
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "user", "content": "well?"},
        ]
    )
    err = _invalid(body)
    assert err.param == "messages[1].role"
    assert "call_9" in err.message


def test_parse_does_not_alias_client_dicts() -> None:
    body = _base(tools=[copy.deepcopy(WEATHER_TOOL)])
    req = parse_chat_request(body)
    req.messages[0]["content"] = "changed"
    assert body["messages"][0]["content"] == "hi"


# ---------------------------------------------------------------------------------- responses


def test_an_answer_without_a_creation_time_is_stamped_now() -> None:
    # Anthropic and Gemini answers carry no ``created``; the parsed response has 0.
    before = int(time.time())
    body = render_chat_response(ChatResponse(id="m", model="x", content="hi"), model="alias")
    assert before <= orjson.loads(body)["created"] <= int(time.time())


def test_rendered_response_is_a_valid_chat_completion_for_the_sdk() -> None:
    resp = ChatResponse(
        id="up-1",
        model="upstream-model",
        content="checking",
        tool_calls=[ToolCall(id="call_1", name="get_weather", arguments='{"city":"Oslo"}')],
        finish_reason="tool_calls",
        usage=Usage(
            prompt_tokens=100,
            completion_tokens=20,
            cached_tokens=60,
            cache_write_tokens=5,
            reasoning_tokens=7,
        ),
        created=1_700_000_000,
        system_fingerprint="fp_1",
    )
    body = render_chat_response(resp, model="alias")
    ChatCompletion.model_validate(orjson.loads(body))  # strict shape check
    got = _client(body).chat.completions.create(model="alias", messages=[])
    assert got.id == "chatcmpl-up-1"
    assert got.object == "chat.completion"
    assert got.model == "alias"
    assert got.created == 1_700_000_000
    assert got.system_fingerprint == "fp_1"
    choice = got.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "checking"
    assert choice.message.refusal is None
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert call.type == "function"
    assert (call.id, call.function.name, call.function.arguments) == (
        "call_1",
        "get_weather",
        '{"city":"Oslo"}',
    )
    usage = got.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (100, 20, 120)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 60
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 7


def test_plain_answer_has_no_tool_calls_key() -> None:
    body = orjson.loads(
        render_chat_response(ChatResponse(id="chatcmpl-1", model="x", content="hi"), model="m")
    )
    assert body["id"] == "chatcmpl-1"
    assert "tool_calls" not in body["choices"][0]["message"]
    assert body["choices"][0]["finish_reason"] == "stop"


# ------------------------------------------------------------------------------------ streams

STREAM = [
    StreamDelta(id="up", model="upstream"),  # carries nothing the client sees
    StreamDelta(content="Let me "),
    StreamDelta(content="check."),
    StreamDelta(tool_calls=[ToolCallDelta(index=0, id="call_a", name="get_weather")]),
    StreamDelta(tool_calls=[ToolCallDelta(index=0, arguments='{"city":')]),
    StreamDelta(tool_calls=[ToolCallDelta(index=0, arguments='"Oslo"}')]),
    StreamDelta(
        tool_calls=[ToolCallDelta(index=1, id="call_b", name="get_time", arguments='{"tz":"CET"}')]
    ),
    StreamDelta(finish_reason="tool_calls"),
    StreamDelta(usage=Usage(prompt_tokens=30, completion_tokens=12, cached_tokens=10)),
]


def _render_stream(deltas: list[StreamDelta], *, include_usage: bool) -> bytes:
    r = ChatStreamRenderer(id="abc", model="alias", created=42, include_usage=include_usage)
    return b"".join(r.delta(d) for d in deltas) + r.end()


def _chunks(sse: bytes) -> list[dict[str, Any]]:
    frames = sse.split(b"\n\n")
    assert frames[-1] == b"" and frames[-2] == b"data: [DONE]"
    out = []
    for frame in frames[:-2]:
        assert frame.startswith(b"data: ")
        out.append(orjson.loads(frame[6:]))
    return out


def test_stream_accumulates_in_the_sdk_to_the_canonical_answer() -> None:
    sse = _render_stream(STREAM, include_usage=True)
    for chunk in _chunks(sse):
        ChatCompletionChunk.model_validate(chunk)
    client = _client(sse, sse=True)
    with client.chat.completions.stream(model="alias", messages=[]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.id == "chatcmpl-abc"
    assert final.model == "alias"
    assert final.created == 42
    msg = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert msg.role == "assistant"
    assert msg.content == "Let me check."
    assert msg.tool_calls is not None
    calls = [(c.id, c.function.name, c.function.arguments) for c in msg.tool_calls]
    assert calls == [
        ("call_a", "get_weather", '{"city":"Oslo"}'),
        ("call_b", "get_time", '{"tz":"CET"}'),
    ]
    assert final.usage is not None
    assert (final.usage.prompt_tokens, final.usage.completion_tokens) == (30, 12)
    assert final.usage.prompt_tokens_details is not None
    assert final.usage.prompt_tokens_details.cached_tokens == 10


def test_stream_chunk_layout() -> None:
    chunks = _chunks(_render_stream(STREAM, include_usage=True))
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "Let me "}
    assert all("role" not in c["choices"][0]["delta"] for c in chunks[1:-1])
    first_call = chunks[2]["choices"][0]["delta"]["tool_calls"][0]
    assert first_call == {
        "index": 0,
        "id": "call_a",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    later = chunks[3]["choices"][0]["delta"]["tool_calls"][0]
    assert later == {"index": 0, "function": {"arguments": '{"city":'}}
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    # usage held back for one final chunk with no choices; every other chunk has usage null
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == 42
    assert all(c["usage"] is None for c in chunks[:-1])


def test_stream_without_include_usage_has_no_usage_anywhere() -> None:
    chunks = _chunks(_render_stream(STREAM, include_usage=False))
    assert all("usage" not in c for c in chunks)
    assert all(c["choices"] for c in chunks)


def test_finish_only_stream_still_starts_with_role() -> None:
    chunks = _chunks(_render_stream([StreamDelta(finish_reason="stop")], include_usage=False))
    assert chunks == [
        {
            "id": "chatcmpl-abc",
            "object": "chat.completion.chunk",
            "created": 42,
            "model": "alias",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": ""},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
        }
    ]


def test_mid_stream_error_makes_the_sdk_raise() -> None:
    r = ChatStreamRenderer(id="abc", model="alias", created=1, include_usage=False)
    sse = r.delta(StreamDelta(content="partial")) + r.error(
        GatewayError("timeout", "upstream timed out")
    )
    client = _client(sse, sse=True)
    stream = client.chat.completions.create(model="alias", messages=[], stream=True)
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            got.append(chunk.choices[0].delta.content)
    assert got == ["partial"]
    assert info.value.message == "upstream timed out"
    assert info.value.body == {
        "message": "upstream timed out",
        "type": "server_error",
        "param": None,
        "code": "timeout",
    }


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("err", "exc", "etype", "code"),
    [
        (
            GatewayError("invalid_request", "bad", param="messages[0].content"),
            openai.BadRequestError,
            "invalid_request_error",
            None,
        ),
        (
            GatewayError("authentication", "bad key"),
            openai.AuthenticationError,
            "invalid_request_error",
            "invalid_api_key",
        ),
        (
            GatewayError("permission", "no"),
            openai.PermissionDeniedError,
            "invalid_request_error",
            None,
        ),
        (
            GatewayError("not_found", "no model", code="model_not_found"),
            openai.NotFoundError,
            "invalid_request_error",
            "model_not_found",
        ),
        (
            GatewayError("unprocessable", "no"),
            openai.UnprocessableEntityError,
            "invalid_request_error",
            None,
        ),
        (
            GatewayError("rate_limit", "slow down", retry_after=2),
            openai.RateLimitError,
            "requests",
            "rate_limit_exceeded",
        ),
        (GatewayError("upstream", "bad gateway"), openai.InternalServerError, "server_error", None),
        (GatewayError("internal", "bug"), openai.InternalServerError, "server_error", None),
    ],
)
def test_errors_render_as_openai_errors(
    err: GatewayError, exc: type[openai.APIStatusError], etype: str, code: str | None
) -> None:
    body = render_error(err)
    assert orjson.loads(body) == {
        "error": {"message": err.message, "type": etype, "param": err.param, "code": code}
    }
    client = _client(body, status=err.status)
    with pytest.raises(exc) as info:
        client.chat.completions.create(model="m", messages=[])
    assert info.value.status_code == err.status
    assert info.value.message.endswith(err.message) or err.message in info.value.message
    assert info.value.type == etype
    assert info.value.code == code
    assert info.value.param == err.param


def _all_kinds() -> list[Callable[[], GatewayError]]:
    from modelmix.errors import STATUS_BY_KIND

    return [lambda k=k: GatewayError(k, "x") for k in STATUS_BY_KIND]  # type: ignore[misc]


@pytest.mark.parametrize("make", _all_kinds())
def test_every_error_kind_renders(make: Callable[[], GatewayError]) -> None:
    err = orjson.loads(render_error(make()))["error"]
    assert isinstance(err["type"], str) and err["message"] == "x"


def test_history_fields_we_ignore_or_tolerate() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    req = parse_chat_request(
        _base(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": "hi",
                            "prompt_cache_breakpoint": {"mode": "explicit"},
                        }
                    ],
                },
                {
                    "role": "assistant",
                    "content": "ok",
                    "refusal": None,
                    "audio": None,
                    "function_call": None,
                    "tool_calls": [call],
                },
                {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "1"}]},
            ]
        )
    )
    assert req.messages == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        {"role": "assistant", "content": "ok", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "1"}]},
    ]


@pytest.mark.parametrize("include_usage", [False, True])
def test_text_chunks_take_a_shortcut_to_the_same_bytes(include_usage: bool) -> None:
    r = ChatStreamRenderer(id="x", model="m", created=1, include_usage=include_usage)
    r.delta(StreamDelta(content="first"))
    text = 'tok "q" é\n'
    choice = {"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
    assert r.delta(StreamDelta(content=text)) == r._frame([choice], None)
