"""Gemini adapter: pure translation tests on real-shaped payloads."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from modelmix.errors import UnsupportedParameter, UpstreamError
from modelmix.providers.base import Deployment, SSEEvent
from modelmix.providers.registry import get_adapter
from modelmix.types import ChatRequest, StreamDelta, Usage
from modelmix.wire.gemini.upstream import ADAPTER, clean_schema

DEP = Deployment(
    id="gem#0",
    model="gem",
    provider="gemini",
    upstream_model="gemini-2.5-flash",
    base_url="https://generativelanguage.googleapis.com/v1beta",
    api_key="AIza-test",
)

TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": ["string", "null"], "enum": ["c", "f"]},
                "days": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"d": {"type": "integer"}},
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def _body(req: ChatRequest) -> dict[str, Any]:
    result: dict[str, Any] = orjson.loads(ADAPTER.build_request(req, DEP).body)
    return result


def test_urls_and_headers() -> None:
    assert get_adapter("gemini") is ADAPTER
    msgs = [{"role": "user", "content": "hi"}]
    http = ADAPTER.build_request(ChatRequest(model="g", messages=msgs), DEP)
    assert http.url == (
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    )
    assert http.headers["x-goog-api-key"] == "AIza-test"
    http = ADAPTER.build_request(ChatRequest(model="g", messages=msgs, stream=True), DEP)
    assert http.url.endswith("/models/gemini-2.5-flash:streamGenerateContent?alt=sse")


def test_conversation_translation() -> None:
    req = ChatRequest(
        model="g",
        messages=[
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is in this image, and the weather?"},
                    {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Lima"}'},
                    },
                    {
                        "id": "call_b",
                        "type": "function",
                        "function": {"name": "get_time", "arguments": "{}"},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
            {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
            {"role": "assistant", "content": "It is 21C at noon."},
        ],
        tools=[TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {
                    "type": "object",
                    "properties": {"a": {"type": "string"}},
                    "additionalProperties": False,
                },
            },
        },
        params={
            "max_tokens": 256,
            "temperature": 0.1,
            "top_p": 0.8,
            "top_k": 20,
            "stop": ["###"],
            "seed": 3,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.2,
            "n": 2,
            "logprobs": True,
            "top_logprobs": 4,
            "reasoning_effort": "low",
        },
    )
    body = _body(req)
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "What is in this image, and the weather?"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Lima"}}},
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21}}},
                {"functionResponse": {"name": "get_time", "response": {"result": "noon"}}},
            ],
        },
        {"role": "model", "parts": [{"text": "It is 21C at noon."}]},
    ]
    [decl] = body["tools"][0]["functionDeclarations"]
    assert decl["name"] == "get_weather"
    assert decl["parameters"] == {
        "type": "object",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "nullable": True, "enum": ["c", "f"]},
            "days": {
                "type": "array",
                "items": {"type": "object", "properties": {"d": {"type": "integer"}}},
            },
        },
        "required": ["city"],
    }
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}
    }
    assert body["generationConfig"] == {
        "maxOutputTokens": 256,
        "temperature": 0.1,
        "topP": 0.8,
        "topK": 20,
        "stopSequences": ["###"],
        "seed": 3,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.2,
        "candidateCount": 2,
        "responseLogprobs": True,
        "logprobs": 4,
        "thinkingConfig": {"thinkingBudget": 1024},
        "responseMimeType": "application/json",
        "responseSchema": {"type": "object", "properties": {"a": {"type": "string"}}},
    }


@pytest.mark.parametrize(
    ("choice", "mode"), [("auto", "AUTO"), ("required", "ANY"), ("none", "NONE")]
)
def test_tool_choice_modes(choice: str, mode: str) -> None:
    req = ChatRequest(
        model="g", messages=[{"role": "user", "content": "x"}], tools=[TOOL], tool_choice=choice
    )
    assert _body(req)["toolConfig"] == {"functionCallingConfig": {"mode": mode}}


def test_json_object_and_no_params_tool() -> None:
    tool = {
        "type": "function",
        "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
    }
    req = ChatRequest(
        model="g",
        messages=[{"role": "user", "content": "x"}],
        tools=[tool],
        response_format={"type": "json_object"},
    )
    body = _body(req)
    assert body["generationConfig"] == {"responseMimeType": "application/json"}
    assert body["tools"] == [{"functionDeclarations": [{"name": "now"}]}]


def test_clean_schema_const_and_union() -> None:
    assert clean_schema({"const": "x", "$id": "y"}) == {"enum": ["x"]}
    assert clean_schema({"type": ["string", "integer"]}) == {
        "anyOf": [{"type": "string"}, {"type": "integer"}]
    }


def test_unsupported() -> None:
    orphan = ChatRequest(
        model="g", messages=[{"role": "tool", "tool_call_id": "call_zz", "content": "1"}]
    )
    with pytest.raises(UnsupportedParameter):
        ADAPTER.build_request(orphan, DEP)
    remote = ChatRequest(
        model="g",
        messages=[
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
            }
        ],
    )
    with pytest.raises(UnsupportedParameter):
        ADAPTER.build_request(remote, DEP)
    serial = ChatRequest(
        model="g",
        messages=[{"role": "user", "content": "x"}],
        tools=[TOOL],
        params={"parallel_tool_calls": False},
    )
    with pytest.raises(UnsupportedParameter) as info:
        ADAPTER.check(serial, DEP)
    assert info.value.param == "parallel_tool_calls"


def _user(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": list(parts)}]


_CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}


@pytest.mark.parametrize(
    ("messages", "needle"),
    [
        (
            _user({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
            "input_audio",
        ),
        (_user({"type": "file", "file": {"file_data": "AAAA"}}), "file"),
        (_user({"type": "image_url", "image_url": {"url": "https://x/y.png"}}), "inline"),
        (_user({"type": "image_url", "image_url": {"url": "data:image/png,raw"}}), "base64"),
        ([{"role": "developer", "content": "You are terse."}], "besides the system prompt"),
        (
            [
                {"role": "user", "content": "look"},
                {"role": "assistant", "content": None, "tool_calls": [_CALL]},
                {
                    "role": "tool",
                    "tool_call_id": "c1",
                    "content": [
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
                    ],
                },
            ],
            "tool results may only hold text",
        ),
    ],
    ids=["audio", "file", "url-image", "raw-data-url", "system-only", "image-tool-result"],
)
def test_check_screens_message_content_the_translation_would_refuse(
    messages: list[dict[str, Any]], needle: str
) -> None:
    req = ChatRequest(model="g", messages=messages)
    with pytest.raises(UnsupportedParameter) as info:
        ADAPTER.check(req, DEP)
    assert info.value.param == "messages" and needle in info.value.reason
    with pytest.raises(UnsupportedParameter):  # the translation refuses it too
        ADAPTER.build_request(req, DEP)


def test_check_accepts_inline_images_and_system_prompts() -> None:
    messages = [
        {"role": "system", "content": "Be terse."},
        *_user(
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
        ),
    ]
    req = ChatRequest(model="g", messages=messages)
    ADAPTER.check(req, DEP)
    ADAPTER.build_request(req, DEP)


def test_parse_response_with_function_calls_and_thoughts() -> None:
    body = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking...", "thought": True},
                        {"text": "Calling tools."},
                        {"functionCall": {"name": "get_weather", "args": {"city": "Lima"}}},
                        {"functionCall": {"name": "get_time", "args": {}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 120,
            "candidatesTokenCount": 30,
            "thoughtsTokenCount": 50,
            "cachedContentTokenCount": 64,
            "totalTokenCount": 200,
        },
        "modelVersion": "gemini-2.5-flash",
        "responseId": "resp-1",
    }
    resp = ADAPTER.parse_response(orjson.dumps(body))
    assert resp.id == "resp-1"
    assert resp.model == "gemini-2.5-flash"
    assert resp.content == "Calling tools."
    assert resp.finish_reason == "tool_calls"
    assert [(c.name, orjson.loads(c.arguments)) for c in resp.tool_calls] == [
        ("get_weather", {"city": "Lima"}),
        ("get_time", {}),
    ]
    ids = [c.id for c in resp.tool_calls]
    assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 2
    assert resp.usage == Usage(
        prompt_tokens=120, completion_tokens=80, cached_tokens=64, reasoning_tokens=50
    )


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
    ],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    assert ADAPTER.parse_response(orjson.dumps(body)).finish_reason == finish


def test_blocked_prompt_and_malformed() -> None:
    blocked = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 9},
    }
    resp = ADAPTER.parse_response(orjson.dumps(blocked))
    assert (resp.content, resp.finish_reason) == (None, "content_filter")
    for bad in (
        b"<html>",
        b"{}",
        b'{"candidates": [{"content": {"parts": [{"functionCall": {}}]}}]}',
    ):
        with pytest.raises(UpstreamError) as info:
            ADAPTER.parse_response(bad)
        assert info.value.kind == "bad_response"


def _stream(chunks: list[dict[str, Any]]) -> tuple[list[StreamDelta], bool]:
    parser = ADAPTER.stream_parser()
    out: list[StreamDelta] = []
    for chunk in chunks:
        out.extend(parser.feed(SSEEvent(data=orjson.dumps(chunk).decode())))
    return out, parser.finished()


def test_stream_text() -> None:
    part = {"modelVersion": "gemini-2.5-flash", "responseId": "r9"}
    deltas, finished = _stream(
        [
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}], **part},
            {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}}], **part},
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": "!"}]}, "finishReason": "STOP"}
                ],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 3},
                **part,
            },
        ]
    )
    assert finished
    assert deltas[0].id == "r9" and deltas[0].model == "gemini-2.5-flash"
    assert "".join(d.content or "" for d in deltas) == "Hello!"
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage == Usage(prompt_tokens=5, completion_tokens=3)


def test_stream_function_calls() -> None:
    deltas, finished = _stream(
        [
            {"candidates": [{"content": {"parts": [{"text": "One sec."}]}}]},
            {
                "candidates": [
                    {
                        "content": {
                            "parts": [
                                {"functionCall": {"name": "a", "args": {"x": 1}}},
                                {"functionCall": {"name": "b", "args": {}}},
                            ]
                        },
                        "finishReason": "STOP",
                    }
                ],
                "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9},
            },
        ]
    )
    assert finished
    calls = [c for d in deltas for c in d.tool_calls or ()]
    assert [(c.index, c.name, c.arguments) for c in calls] == [(0, "a", '{"x":1}'), (1, "b", "{}")]
    assert all(c.id for c in calls)
    assert deltas[-1].finish_reason == "tool_calls"


def test_stream_not_finished_and_error_chunk() -> None:
    _, finished = _stream([{"candidates": [{"content": {"parts": [{"text": "x"}]}}]}])
    assert not finished
    err = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    with pytest.raises(UpstreamError) as info:
        _stream([err])
    assert info.value.kind == "overloaded"


def _gerror(code: int, status: str, message: str, details: list[Any] | None = None) -> bytes:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return orjson.dumps({"error": error})


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        (400, "INVALID_ARGUMENT", "invalid_request"),
        (403, "PERMISSION_DENIED", "auth"),
        (404, "NOT_FOUND", "invalid_request"),
        (429, "RESOURCE_EXHAUSTED", "rate_limit"),
        (500, "INTERNAL", "server"),
        (503, "UNAVAILABLE", "overloaded"),
    ],
)
def test_parse_error(code: int, status: str, kind: str) -> None:
    err = ADAPTER.parse_error(code, _gerror(code, status, "msg"), {})
    assert (err.kind, err.status, err.message) == (kind, code, "msg")


def test_parse_error_retry_info_and_bad_key() -> None:
    details = [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"},
    ]
    err = ADAPTER.parse_error(429, _gerror(429, "RESOURCE_EXHAUSTED", "quota", details), {})
    assert (err.kind, err.retry_after) == ("rate_limit", 17.0)
    err = ADAPTER.parse_error(
        429, _gerror(429, "RESOURCE_EXHAUSTED", "quota", details), {"retry-after": "2"}
    )
    assert err.retry_after == 2.0
    bad_key = [
        {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"},
    ]
    err = ADAPTER.parse_error(
        400, _gerror(400, "INVALID_ARGUMENT", "API key not valid.", bad_key), {}
    )
    assert err.kind == "auth"
    raw = ADAPTER.parse_error(504, b"upstream request timeout", {})
    assert (raw.kind, raw.message) == ("server", "upstream request timeout")


# generateContent with responseLogprobs and logprobs=2, as Google documents the shape; the
# second step's zero log probability is left out, as proto3 JSON does.
LOGPROBS_RESULT = {
    "topCandidates": [
        {
            "candidates": [
                {"token": "Hi", "tokenId": 2151, "logProbability": -0.0625},
                {"token": "Hello", "tokenId": 4521, "logProbability": -2.875},
            ]
        },
        {"candidates": [{"token": "!", "tokenId": 235341}, {"token": ".", "tokenId": 235265}]},
    ],
    "chosenCandidates": [
        {"token": "Hi", "tokenId": 2151, "logProbability": -0.0625},
        {"token": "!", "tokenId": 235341},
    ],
}
OPENAI_LOGPROBS = {
    "content": [
        {
            "token": "Hi",
            "logprob": -0.0625,
            "bytes": [72, 105],
            "top_logprobs": [
                {"token": "Hi", "logprob": -0.0625, "bytes": [72, 105]},
                {"token": "Hello", "logprob": -2.875, "bytes": [72, 101, 108, 108, 111]},
            ],
        },
        {
            "token": "!",
            "logprob": 0.0,
            "bytes": [33],
            "top_logprobs": [
                {"token": "!", "logprob": 0.0, "bytes": [33]},
                {"token": ".", "logprob": 0.0, "bytes": [46]},
            ],
        },
    ],
    "refusal": None,
}


def test_logprobs_are_translated_to_openais_shape() -> None:
    from openai.types.chat.chat_completion import ChoiceLogprobs

    candidate = {
        "content": {"role": "model", "parts": [{"text": "Hi!"}]},
        "finishReason": "STOP",
        "avgLogprobs": -0.03125,
        "logprobsResult": LOGPROBS_RESULT,
    }
    resp = ADAPTER.parse_response(orjson.dumps({"candidates": [candidate]}))
    assert resp.logprobs == OPENAI_LOGPROBS
    ChoiceLogprobs.model_validate(resp.logprobs)  # what the openai SDK expects

    parser = ADAPTER.stream_parser()
    (delta,) = parser.feed(SSEEvent(orjson.dumps({"candidates": [candidate]}).decode()))
    assert delta.logprobs == OPENAI_LOGPROBS
