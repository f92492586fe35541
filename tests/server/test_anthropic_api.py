"""Anthropic wire format: SDK requests parse to the expected canonical (OpenAI-shaped) request;
rendered bytes satisfy the real SDK, including its stream accumulator."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from modelmix.errors import GatewayError
from modelmix.types import ChatResponse, FinishReason, StreamDelta, ToolCall, ToolCallDelta, Usage
from modelmix.wire.anthropic_messages.client import (
    MessageStreamRenderer,
    parse_messages_request,
    render_error,
    render_message_response,
)
from modelmix.wire.openai_chat.client import parse_chat_request

WEATHER = {
    "name": "get_weather",
    "description": "Weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
TIME = {"name": "get_time", "input_schema": {"type": "object"}}


def _client(
    body: bytes, *, status: int = 200, sse: bool = False, seen: list[Any] | None = None
) -> anthropic.Anthropic:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if seen is not None:
            seen.append(orjson.loads(request.content))
        ctype = "text/event-stream" if sse else "application/json"
        return httpx2.Response(status, content=body, headers={"content-type": ctype})

    return anthropic.Anthropic(
        api_key="sk-ant-test",
        base_url="http://gateway.test",
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
        max_retries=0,
    )


def _base(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-x",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}],
        **extra,
    }


def _invalid(body: object) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        parse_messages_request(body)
    assert info.value.kind == "invalid_request"
    return info.value


def _ok_reply() -> bytes:
    return render_message_response(ChatResponse(id="1", model="u", content="ok"), model="m")


# ------------------------------------------------------------------------------------ parsing


def test_sdk_conversation_with_tools_translates_to_exact_openai_messages() -> None:
    seen: list[Any] = []
    _client(_ok_reply(), seen=seen).messages.create(  # type: ignore[call-overload]
        model="claude-x",
        max_tokens=256,
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather in Oslo, and the time?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    },
                    {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [
                            {"type": "text", "text": "clock"},
                            {"type": "text", "text": "down"},
                        ],
                        "is_error": True,
                    },
                    {"type": "text", "text": "Thanks. Summarise."},
                ],
            },
        ],
        tools=[WEATHER, TIME],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        stop_sequences=["END"],
        metadata={"user_id": "user-7"},
    )
    req = parse_messages_request(seen[0])
    assert req.model == "claude-x"
    assert req.stream is False
    assert req.messages == [
        {"role": "system", "content": "You are terse."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Oslo, and the time?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_time", "arguments": "{}"},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "rain"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: clock\ndown"},
        {"role": "user", "content": "Thanks. Summarise."},
    ]
    assert req.tools == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather in a city",
                "parameters": WEATHER["input_schema"],
            },
        },
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}},
    ]
    assert req.tool_choice == "auto"
    assert req.params == {
        "max_tokens": 256,
        "stop": ["END"],
        "user": "user-7",
        "parallel_tool_calls": False,
    }
    # The canonical request is a valid OpenAI request: the OpenAI validator accepts it unchanged.
    again = parse_chat_request(
        {"model": "m", "messages": req.messages, "tools": req.tools, "tool_choice": req.tool_choice}
    )
    assert again.messages == req.messages
    assert again.tools == req.tools


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        (
            {"type": "tool", "name": "get_time"},
            {"type": "function", "function": {"name": "get_time"}},
        ),
    ],
)
def test_tool_choice_mapping(choice: dict[str, Any], expected: object) -> None:
    req = parse_messages_request(_base(tools=[WEATHER, TIME], tool_choice=choice))
    assert req.tool_choice == expected
    assert "parallel_tool_calls" not in req.params


def test_sampling_params_stream_and_url_image() -> None:
    req = parse_messages_request(
        _base(
            temperature=0.3,
            top_p=0.8,
            top_k=40,
            stream=True,
            thinking={"type": "disabled"},
            service_tier="auto",
            system="plain system",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "source": {"type": "url", "url": "https://i/x.png"}}
                    ],
                }
            ],
        )
    )
    assert req.stream is True
    assert req.params == {"max_tokens": 100, "temperature": 0.3, "top_p": 0.8, "top_k": 40}
    assert req.messages == [
        {"role": "system", "content": "plain system"},
        {
            "role": "user",
            "content": [{"type": "image_url", "image_url": {"url": "https://i/x.png"}}],
        },
    ]


def test_output_config_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    req = parse_messages_request(
        _base(output_config={"format": {"type": "json_schema", "schema": schema}, "effort": "low"})
    )
    assert req.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }
    assert req.params["reasoning_effort"] == "low"


def _conv(*messages: dict[str, Any]) -> dict[str, Any]:
    return _base(messages=list(messages))


_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}
_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "rain"}


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        ("nope", None, "JSON object"),
        ({"max_tokens": 5, "messages": []}, "model", "Field required"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens", "required"),
        (_base(max_tokens=0), "max_tokens", "greater than or equal to 1"),
        (_base(max_tokens="10"), "max_tokens", "valid integer"),
        (_base(messages=[]), "messages", "at least one message"),
        (_conv({"role": "user"}), "messages.0.content", "Field required"),
        (_conv({"role": "user", "content": ""}), "messages.0.content", "non-empty"),
        (
            _conv({"role": "user", "content": [{"type": "text"}]}),
            "messages.0.content.0.text",
            "Field required",
        ),
        (
            _conv(
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/bmp", "data": "x"},
                        }
                    ],
                }
            ),
            "messages.0.content.0.source.media_type",
            "image/png",
        ),
        (
            _conv({"role": "user", "content": [_RESULT]}),
            "messages.0.content.0",
            "unexpected tool_use_id",
        ),
        (
            _conv(
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [_USE]},
                {"role": "user", "content": "no result"},
            ),
            "messages.1.content",
            "without tool_result",
        ),
        (
            _conv(
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [_USE]},
                {"role": "user", "content": [{"type": "text", "text": "first"}, _RESULT]},
            ),
            "messages.2.content.1",
            "must come first",
        ),
        (
            _conv(
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [{**_USE, "input": "city=Oslo"}]},
                {"role": "user", "content": [_RESULT]},
            ),
            "messages.1.content.0.input",
            "dictionary",
        ),
        (_base(system=[{"type": "image", "source": {}}]), "system.0.type", "'text'"),
        (_base(tools=[{"name": "f"}]), "tools.0.input_schema", "Field required"),
        (
            _base(tools=[{"name": "f", "input_schema": {"type": "array"}}]),
            "tools.0.input_schema.type",
            "object",
        ),
        (
            _base(tools=[{"name": "a b", "input_schema": {"type": "object"}}]),
            "tools.0.name",
            "pattern",
        ),
        (_base(tools=[WEATHER, WEATHER]), "tools.1", "unique"),
        (
            _base(tools=[WEATHER], tool_choice={"type": "tool", "name": "x"}),
            "tool_choice.name",
            "'x'",
        ),
        (_base(tool_choice={"type": "any"}), "tool_choice", "requires 'tools'"),
        (_base(tools=[WEATHER], tool_choice={"type": "maybe"}), "tool_choice.type", "'auto'"),
        (_base(temperature=1.5), "temperature", "less than or equal to 1"),
        (_base(top_p=-1), "top_p", "greater than or equal to 0"),
        (_base(top_k=0), "top_k", "greater than or equal to 1"),
        (_base(stop_sequences="END"), "stop_sequences", "valid list"),
        (_base(stream="true"), "stream", "valid boolean"),
    ],
)
def test_validation_errors_name_the_param(body: object, param: str | None, fragment: str) -> None:
    err = _invalid(body)
    assert err.param == param
    assert fragment in err.message
    if param is not None:
        assert err.message.startswith(f"{param}: ")


# ---------------------------------------------------------------------------------- responses


@pytest.mark.parametrize(
    ("finish", "stop_reason"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
    ],
)
def test_rendered_message_parses_in_the_sdk(finish: FinishReason, stop_reason: str) -> None:
    resp = ChatResponse(
        id="up-1",
        model="upstream",
        content="Checking.",
        tool_calls=[
            ToolCall(id="toolu_1", name="get_weather", arguments='{"city": "Oslo"}'),
            ToolCall(id="toolu_2", name="get_time", arguments=""),
        ],
        finish_reason=finish,
        usage=Usage(
            prompt_tokens=100, completion_tokens=20, cached_tokens=60, cache_write_tokens=15
        ),
    )
    body = render_message_response(resp, model="alias")
    Message.model_validate(orjson.loads(body))
    msg = _client(body).messages.create(model="alias", max_tokens=5, messages=[])
    assert msg.id == "msg_up-1"
    assert msg.model == "alias"
    assert msg.role == "assistant"
    assert msg.stop_reason == stop_reason
    assert msg.stop_sequence is None
    assert [b.to_dict() for b in msg.content] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_time", "input": {}},
    ]
    # canonical prompt_tokens counts everything; Anthropic's input_tokens excludes the cache
    assert msg.usage.input_tokens == 25
    assert msg.usage.cache_read_input_tokens == 60
    assert msg.usage.cache_creation_input_tokens == 15
    assert msg.usage.output_tokens == 20


def test_empty_answer_has_no_empty_text_block_and_bad_arguments_are_kept() -> None:
    resp = ChatResponse(
        id="msg_1",
        model="u",
        content="",
        tool_calls=[ToolCall(id="t", name="f", arguments="{not json")],
        finish_reason="tool_calls",
    )
    body = orjson.loads(render_message_response(resp, model="m"))
    assert body["id"] == "msg_1"
    assert body["content"] == [
        {"type": "tool_use", "id": "t", "name": "f", "input": {"_raw_arguments": "{not json"}}
    ]


# ------------------------------------------------------------------------------------ streams

STREAM = [
    StreamDelta(id="up", model="upstream"),
    StreamDelta(content="Let me "),
    StreamDelta(content="check."),
    StreamDelta(tool_calls=[ToolCallDelta(index=0, id="toolu_a", name="get_weather")]),
    StreamDelta(tool_calls=[ToolCallDelta(index=0, arguments='{"city":')]),
    StreamDelta(tool_calls=[ToolCallDelta(index=0, arguments=' "Oslo"}')]),
    StreamDelta(
        tool_calls=[
            ToolCallDelta(index=1, id="toolu_b", name="get_time", arguments='{"tz": "CET"}')
        ]
    ),
    StreamDelta(finish_reason="tool_calls"),
    StreamDelta(
        usage=Usage(prompt_tokens=50, completion_tokens=12, cached_tokens=30, cache_write_tokens=5)
    ),
]


def _render(deltas: list[StreamDelta], **kw: Any) -> bytes:
    r = MessageStreamRenderer(id="abc", model="alias", **kw)
    return b"".join(r.delta(d) for d in deltas) + r.end()


def _events(sse: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for frame in sse.split(b"\n\n")[:-1]:
        event_line, data_line = frame.split(b"\n")
        assert event_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        data = orjson.loads(data_line[6:])
        assert data["type"] == event_line[7:].decode()
        out.append((data["type"], data))
    return out


def test_stream_accumulates_in_the_sdk_to_the_canonical_answer() -> None:
    sse = _render(STREAM, input_tokens=15)
    adapter: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)
    for kind, data in _events(sse):
        if kind != "ping":
            adapter.validate_python(data)
    client = _client(sse, sse=True)
    with client.messages.stream(model="alias", max_tokens=5, messages=[]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Let me check."
    assert final.id == "msg_abc"
    assert final.model == "alias"
    assert final.stop_reason == "tool_use"
    assert [b.to_dict() for b in final.content] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Oslo"}},
        {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {"tz": "CET"}},
    ]
    assert final.usage.input_tokens == 15
    assert final.usage.output_tokens == 12
    assert final.usage.cache_read_input_tokens == 30
    assert final.usage.cache_creation_input_tokens == 5


def test_stream_event_sequence() -> None:
    kinds = [k for k, _ in _events(_render(STREAM))]
    assert kinds == [
        "message_start",
        "ping",
        "content_block_start",  # text 0
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",  # tool 1
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",  # tool 2
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    events = _events(_render(STREAM))
    assert events[0][1]["message"]["usage"] == {"input_tokens": 0, "output_tokens": 0}
    starts = [d for k, d in events if k == "content_block_start"]
    assert [s["index"] for s in starts] == [0, 1, 2]
    assert starts[1]["content_block"] == {
        "type": "tool_use",
        "id": "toolu_a",
        "name": "get_weather",
        "input": {},
    }
    assert events[-2][1]["usage"] == {
        "input_tokens": 15,
        "output_tokens": 12,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 5,
    }


def test_interleaved_tool_fragments_still_accumulate() -> None:
    deltas = [
        StreamDelta(
            tool_calls=[
                ToolCallDelta(index=0, id="t0", name="a", arguments='{"x":'),
                ToolCallDelta(index=1, id="t1", name="b", arguments='{"y":'),
            ]
        ),
        StreamDelta(
            tool_calls=[
                ToolCallDelta(index=0, arguments="1}"),
                ToolCallDelta(index=1, arguments="2}"),
            ]
        ),
        StreamDelta(finish_reason="tool_calls"),
    ]
    with _client(_render(deltas), sse=True).messages.stream(
        model="m", max_tokens=5, messages=[]
    ) as stream:
        final = stream.get_final_message()
    assert [b.to_dict() for b in final.content] == [
        {"type": "tool_use", "id": "t0", "name": "a", "input": {"x": 1}},
        {"type": "tool_use", "id": "t1", "name": "b", "input": {"y": 2}},
    ]


def test_empty_stream_is_still_a_complete_message() -> None:
    r = MessageStreamRenderer(id="msg_z", model="alias")
    sse = r.end()
    with _client(sse, sse=True).messages.stream(model="m", max_tokens=5, messages=[]) as stream:
        final = stream.get_final_message()
    assert final.id == "msg_z"
    assert final.content == []
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize(
    ("finish", "stop_reason"), [("length", "max_tokens"), ("content_filter", "refusal")]
)
def test_stream_stop_reasons(finish: FinishReason, stop_reason: str) -> None:
    events = _events(_render([StreamDelta(content="x"), StreamDelta(finish_reason=finish)]))
    assert events[-2][1]["delta"] == {"stop_reason": stop_reason, "stop_sequence": None}


def test_mid_stream_error_makes_the_sdk_raise() -> None:
    r = MessageStreamRenderer(id="abc", model="alias")
    sse = r.delta(StreamDelta(content="partial")) + r.error(
        GatewayError("overloaded", "all upstreams are busy")
    )
    assert sse.endswith(
        b'event: error\ndata: {"type":"error","error":'
        b'{"type":"overloaded_error","message":"all upstreams are busy"}}\n\n'
    )
    seen_text = []
    with (
        pytest.raises(anthropic.APIStatusError) as info,
        _client(sse, sse=True).messages.stream(model="m", max_tokens=5, messages=[]) as stream,
    ):
        for piece in stream.text_stream:
            seen_text.append(piece)
    assert seen_text == ["partial"]
    assert "all upstreams are busy" in str(info.value)


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("err", "exc", "etype"),
    [
        (
            GatewayError("invalid_request", "bad"),
            anthropic.BadRequestError,
            "invalid_request_error",
        ),
        (
            GatewayError("authentication", "key"),
            anthropic.AuthenticationError,
            "authentication_error",
        ),
        (GatewayError("permission", "no"), anthropic.PermissionDeniedError, "permission_error"),
        (GatewayError("not_found", "no model"), anthropic.NotFoundError, "not_found_error"),
        (GatewayError("request_too_large", "big"), anthropic.APIStatusError, "request_too_large"),
        (
            GatewayError("unprocessable", "no"),
            anthropic.UnprocessableEntityError,
            "invalid_request_error",
        ),
        (GatewayError("rate_limit", "slow"), anthropic.RateLimitError, "rate_limit_error"),
        (GatewayError("upstream", "bad gw"), anthropic.InternalServerError, "api_error"),
        (GatewayError("overloaded", "busy"), anthropic.InternalServerError, "overloaded_error"),
        (GatewayError("timeout", "slow"), anthropic.InternalServerError, "timeout_error"),
        (GatewayError("internal", "bug"), anthropic.InternalServerError, "api_error"),
    ],
)
def test_errors_render_as_anthropic_errors(
    err: GatewayError, exc: type[anthropic.APIStatusError], etype: str
) -> None:
    body = render_error(err)
    assert orjson.loads(body) == {"type": "error", "error": {"type": etype, "message": err.message}}
    with pytest.raises(exc) as info:
        _client(body, status=err.status).messages.create(model="m", max_tokens=5, messages=[])
    assert info.value.status_code == err.status
    assert info.value.body == orjson.loads(body)


def test_usage_known_up_front_goes_into_message_start() -> None:
    early = StreamDelta(usage=Usage(prompt_tokens=40, cached_tokens=10))
    events = _events(_render([early, StreamDelta(content="x")]))
    assert events[0][1]["message"]["usage"] == {"input_tokens": 30, "output_tokens": 0}
