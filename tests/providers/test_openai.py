"""OpenAI Chat Completions adapter: pure translation tests on real-shaped payloads."""

from __future__ import annotations

import time
from email.utils import formatdate

import orjson
import pytest

from modelmix.errors import UnsupportedParameter, UpstreamError
from modelmix.providers.base import Deployment, SSEEvent
from modelmix.providers.registry import get_adapter
from modelmix.types import ChatRequest, StreamDelta, Usage
from modelmix.wire.common import retry_after_from_headers
from modelmix.wire.openai_chat.upstream import ADAPTER

DEP = Deployment(
    id="gpt#0",
    model="gpt",
    provider="openai",
    upstream_model="gpt-4o-mini-2024-07-18",
    base_url="https://api.openai.com/v1",
    api_key="sk-test",
    headers={"OpenAI-Organization": "org-1"},
)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


def test_registry_returns_this_adapter() -> None:
    assert get_adapter("openai") is ADAPTER
    assert ADAPTER.kind == "openai"
    with pytest.raises(KeyError, match="known"):
        get_adapter("cohere")


def test_build_request_non_stream() -> None:
    req = ChatRequest(
        model="gpt",
        messages=[{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "hi"}],
        tools=TOOLS,
        tool_choice="auto",
        response_format={"type": "json_object"},
        params={"max_tokens": 50, "temperature": 0.2, "stop": ["END"], "seed": 7},
    )
    http = ADAPTER.build_request(req, DEP)
    assert http.method == "POST"
    assert http.url == "https://api.openai.com/v1/chat/completions"
    assert http.headers["Authorization"] == "Bearer sk-test"
    assert http.headers["OpenAI-Organization"] == "org-1"
    assert http.headers["Content-Type"] == "application/json"
    body = orjson.loads(http.body)
    assert body == {
        "model": "gpt-4o-mini-2024-07-18",
        "messages": req.messages,
        "max_completion_tokens": 50,  # OpenAI's API: the name every one of its models takes
        "temperature": 0.2,
        "stop": ["END"],
        "seed": 7,
        "tools": TOOLS,
        "tool_choice": "auto",
        "response_format": {"type": "json_object"},
    }


VLLM = Deployment(
    id="llama#0",
    model="llama",
    provider="openai",
    upstream_model="meta-llama/Llama-3.1-8B-Instruct",
    base_url="http://gpu1:8000/v1",
)


@pytest.mark.parametrize(
    ("name", "dep", "sent"),
    [
        ("max_completion_tokens", VLLM, "max_completion_tokens"),
        ("max_tokens", VLLM, "max_tokens"),
        ("max_completion_tokens", DEP, "max_completion_tokens"),
        ("max_tokens", DEP, "max_completion_tokens"),
    ],
)
def test_max_tokens_goes_out_under_the_clients_name_or_openais(
    name: str, dep: Deployment, sent: str
) -> None:
    req = ChatRequest(
        model="gpt",
        messages=[{"role": "user", "content": "hi"}],
        params={"max_tokens": 64},
        max_tokens_name=name,  # type: ignore[arg-type]
    )
    body = orjson.loads(ADAPTER.build_request(req, dep).body)
    assert body[sent] == 64
    assert {"max_tokens", "max_completion_tokens"} & set(body) == {sent}


def test_top_k_is_refused_for_openais_api_but_sent_to_compatible_servers() -> None:
    req = ChatRequest(
        model="gpt", messages=[{"role": "user", "content": "hi"}], params={"top_k": 40}
    )
    with pytest.raises(UnsupportedParameter) as info:
        ADAPTER.check(req, DEP)
    assert info.value.param == "top_k"
    with pytest.raises(UnsupportedParameter):
        ADAPTER.build_request(req, DEP)
    ADAPTER.check(req, VLLM)
    assert orjson.loads(ADAPTER.build_request(req, VLLM).body)["top_k"] == 40


def test_build_request_stream_asks_for_usage_and_no_key_means_no_auth() -> None:
    dep = Deployment(
        id="local#0",
        model="local",
        provider="openai",
        upstream_model="llama3",
        base_url="http://localhost:11434/v1",
    )
    http = ADAPTER.build_request(
        ChatRequest(model="local", messages=[{"role": "user", "content": "x"}], stream=True), dep
    )
    assert "Authorization" not in http.headers
    body = orjson.loads(http.body)
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}


def test_parse_response_with_tool_calls_and_usage_details() -> None:
    body = {
        "id": "chatcmpl-AB12",
        "object": "chat.completion",
        "created": 1731000000,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": None,
                    "refusal": None,
                    "tool_calls": [
                        {
                            "id": "call_abc",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 300,
            "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 128, "audio_tokens": 0},
        },
    }
    resp = ADAPTER.parse_response(orjson.dumps(body))
    assert resp.id == "chatcmpl-AB12"
    assert resp.model == "gpt-4o-mini-2024-07-18"
    assert resp.content is None
    assert resp.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in resp.tool_calls] == [
        ("call_abc", "get_weather", '{"city":"Paris"}')
    ]
    assert resp.usage == Usage(
        prompt_tokens=1200, completion_tokens=300, cached_tokens=1024, reasoning_tokens=128
    )
    assert resp.created == 1731000000
    assert resp.system_fingerprint == "fp_0ba0d124f1"


def test_parse_response_plain_and_length() -> None:
    body = {
        "id": "x",
        "model": "m",
        "choices": [{"index": 0, "message": {"content": "Hel"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    resp = ADAPTER.parse_response(orjson.dumps(body))
    assert (resp.content, resp.finish_reason) == ("Hel", "length")
    assert resp.usage == Usage(prompt_tokens=3, completion_tokens=1)


@pytest.mark.parametrize(
    "body", [b"not json", b"[1,2]", b'{"id": "x", "choices": []}', b'{"choices": "nope"}', b"{}"]
)
def test_parse_response_malformed_is_bad_response(body: bytes) -> None:
    with pytest.raises(UpstreamError) as info:
        ADAPTER.parse_response(body)
    assert info.value.kind == "bad_response"


def test_parse_response_error_in_200_body() -> None:
    body = b'{"error": {"message": "Provider returned error", "code": 502}}'
    with pytest.raises(UpstreamError) as info:
        ADAPTER.parse_response(body)
    assert info.value.kind == "server"
    assert "Provider returned error" in info.value.message


def _run(events: list[str]) -> tuple[list[StreamDelta], bool]:
    parser = ADAPTER.stream_parser()
    deltas: list[StreamDelta] = []
    for data in events:
        deltas.extend(parser.feed(SSEEvent(data=data)))
    return deltas, parser.finished()


def _chunk(delta: dict[str, object] | None, finish: str | None = None, **extra: object) -> str:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return orjson.dumps(
        {
            "id": "chatcmpl-9",
            "object": "chat.completion.chunk",
            "model": "gpt-4o",
            "choices": choices,
        }
        | extra
    ).decode()


def test_stream_text_with_final_usage_chunk() -> None:
    deltas, finished = _run(
        [
            _chunk({"role": "assistant", "content": ""}),
            _chunk({"content": "Hello"}),
            _chunk({"content": " world"}),
            _chunk({}, "stop"),
            _chunk(
                None,
                usage={
                    "prompt_tokens": 10,
                    "completion_tokens": 2,
                    "prompt_tokens_details": {"cached_tokens": 4},
                },
            ),
            "[DONE]",
        ]
    )
    assert finished
    assert deltas[0].id == "chatcmpl-9" and deltas[0].model == "gpt-4o"
    assert "".join(d.content or "" for d in deltas) == "Hello world"
    assert [d.finish_reason for d in deltas if d.finish_reason] == ["stop"]
    assert deltas[-1].usage == Usage(prompt_tokens=10, completion_tokens=2, cached_tokens=4)


def test_stream_tool_calls() -> None:
    deltas, finished = _run(
        [
            _chunk(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": ""},
                        }
                    ],
                }
            ),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
            _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
            _chunk({}, "tool_calls"),
            "[DONE]",
        ]
    )
    assert finished
    calls = [tc for d in deltas for tc in d.tool_calls or ()]
    assert calls[0].id == "call_1" and calls[0].name == "get_weather"
    assert all(tc.index == 0 for tc in calls)
    assert all(tc.id is None for tc in calls[1:])
    assert "".join(tc.arguments for tc in calls) == '{"city":"Oslo"}'
    assert deltas[-1].finish_reason == "tool_calls"


def test_stream_not_finished_without_done() -> None:
    _, finished = _run([_chunk({"content": "partial"})])
    assert not finished


def test_stream_error_chunk_raises() -> None:
    parser = ADAPTER.stream_parser()
    with pytest.raises(UpstreamError) as info:
        parser.feed(SSEEvent(data='{"error": {"message": "rate limited upstream", "code": 429}}'))
    assert info.value.kind == "rate_limit"


def test_stream_malformed_chunk_is_bad_response() -> None:
    with pytest.raises(UpstreamError) as info:
        ADAPTER.stream_parser().feed(SSEEvent(data='{"choices": [ '))
    assert info.value.kind == "bad_response"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request"),
        (401, "auth"),
        (403, "auth"),
        (404, "invalid_request"),
        (409, "invalid_request"),
        (413, "invalid_request"),
        (422, "invalid_request"),
        (429, "rate_limit"),
        (500, "server"),
        (502, "server"),
        (503, "overloaded"),
        (529, "overloaded"),
    ],
)
def test_parse_error_status_mapping(status: int, kind: str) -> None:
    body = orjson.dumps({"error": {"message": "boom", "type": "x", "param": None, "code": None}})
    err = ADAPTER.parse_error(status, body, {})
    assert (err.kind, err.status, err.message) == (kind, status, "boom")


def test_parse_error_429_retry_after_and_raw_text() -> None:
    err = ADAPTER.parse_error(429, b"<html>slow down</html>", {"Retry-After": "12"})
    assert err.kind == "rate_limit"
    assert err.retry_after == 12.0
    assert err.message == "<html>slow down</html>"
    long = ADAPTER.parse_error(502, b"x" * 5000, {})
    assert len(long.message) < 600


def test_parse_error_content_filter_code() -> None:
    body = orjson.dumps(
        {"error": {"message": "blocked", "type": "invalid_request_error", "code": "content_filter"}}
    )
    assert ADAPTER.parse_error(400, body, {}).kind == "content_filter"


def test_retry_after_variants() -> None:
    assert retry_after_from_headers({"retry-after-ms": "1500"}) == 1.5
    assert retry_after_from_headers({"retry-after": "3", "retry-after-ms": "250"}) == 0.25
    date = formatdate(time.time() + 30, usegmt=True)
    value = retry_after_from_headers({"Retry-After": date})
    assert value is not None and 25 <= value <= 31
    assert retry_after_from_headers({"Retry-After": "soon"}) is None
    assert retry_after_from_headers({}) is None
