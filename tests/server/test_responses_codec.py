"""The Responses API codec and upstream parser, without a server (wire/openai_responses); the
store is tested in tests/ledger/test_stored_responses.py, and the e2e tests drive the same code
through the real SDKs."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from modelmix.errors import GatewayError, UnsupportedParameter, UpstreamError
from modelmix.providers.base import Deployment, SSEEvent
from modelmix.providers.registry import get_adapter
from modelmix.simulated.answers import Answer
from modelmix.types import Capabilities, ChatRequest, StreamDelta, ToolCallDelta, Usage
from modelmix.wire.extensions import adapter_for, notes
from modelmix.wire.openai_responses.input_items import (
    PageQuery,
    input_items_page,
    parse_page_query,
)
from modelmix.wire.openai_responses.request import (
    items_to_messages,
    parse_responses_request,
    to_chat_request,
)
from modelmix.wire.openai_responses.simulated import ResponsesAsk, ResponsesWire
from modelmix.wire.openai_responses.stream import ResponsesStreamRenderer
from modelmix.wire.openai_responses.upstream import ADAPTER, native_body, translate


def chat_for(body: dict[str, Any]) -> ChatRequest:
    return to_chat_request(parse_responses_request(body))


def events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for frame in raw.decode().split("\n\n"):
        if frame:
            kind, data = frame.split("\n")
            event = orjson.loads(data.removeprefix("data: "))
            assert kind == "event: " + event["type"]
            out.append(event)
    return out


def test_items_become_chat_messages() -> None:
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": "Checking."}],
        },
        {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "w", "arguments": '{"a":1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "sun"},
        {
            "type": "function_call_output",
            "call_id": "c2",
            "output": [{"type": "input_text", "text": "rain"}],
        },
    ]
    messages = items_to_messages(items)
    assert messages == [
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "w", "arguments": "{}"}},
                {"id": "c2", "type": "function", "function": {"name": "w", "arguments": '{"a":1}'}},
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sun"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]


def test_request_fields_map_to_the_canonical_request() -> None:
    chat = chat_for(
        {
            "model": "m",
            "input": "hi",
            "instructions": "Be brief.",
            "max_output_tokens": 64,
            "reasoning": {"effort": "low", "summary": "auto"},
            "text": {"format": {"type": "json_schema", "name": "p", "schema": {"type": "object"}}},
            "tools": [{"type": "function", "name": "w", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "w"},
            "metadata": {"project": "x"},
            "store": False,
        }
    )
    assert chat.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert chat.params == {"max_tokens": 64, "reasoning_effort": "low"}
    assert chat.max_tokens_name == "max_completion_tokens"
    assert chat.response_format == {
        "type": "json_schema",
        "json_schema": {"name": "p", "schema": {"type": "object"}},
    }
    assert chat.tools == [
        {"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}
    ]
    assert chat.tool_choice == {"type": "function", "function": {"name": "w"}}
    assert chat.metadata == {"project": "x"} and chat.responses.store is False


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tools": [{"type": "file_search"}]}, "tools[0].type"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].type"),
        ({"input": 3}, "input"),
        (
            {
                "input": [
                    {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                    {
                        "type": "function_call_output",
                        "call_id": "c",
                        "output": [
                            {"type": "input_image", "image_url": "data:image/png;base64,AA"}
                        ],
                    },
                ]
            },
            "input[1].output[0]",
        ),
    ],
)
def test_refusals_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(GatewayError) as info:
        chat_for({"model": "m", "input": "hi", **body})
    assert info.value.status == 400 and info.value.param == param


def test_null_and_default_fields_are_accepted() -> None:
    chat = chat_for(
        {
            "model": "m",
            "input": "hi",
            "background": False,
            "conversation": None,
            "truncation": "disabled",
            "include": ["reasoning.encrypted_content"],
            "text": {"verbosity": "medium"},
            "service_tier": "auto",
        }
    )
    assert chat.messages == [{"role": "user", "content": "hi"}]


RESPONSES_BODY: dict[str, Any] = {
    "model": "m",
    "input": [
        {"role": "user", "content": "hi", "vendor_tag": "t", "status": None},
        {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": "more", "cache_hint": 1}],
        },
        {"type": "reasoning", "id": "rs_1", "summary": [], "whatever": 1},  # opaque: not read
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", "trace": 2},
        {"type": "function_call_output", "call_id": "c", "output": "42"},
    ],
    "verbosity_hint": "low",
    "previous_response_id": None,
}
RESPONSES_UNKNOWN = {
    "verbosity_hint": "low",
    "input.0.vendor_tag": "t",
    "input.1.content.0.cache_hint": 1,
    "input.3.trace": 2,
}


def _deployment(kind: str, policy: str = "refuse") -> Deployment:
    return Deployment(
        id=f"{kind}#0",
        model=f"{kind}-model",
        provider=kind,
        upstream_model="up",
        base_url="http://up",
        capabilities=Capabilities(unknown_params=policy),
    )


def test_unknown_fields_are_collected_by_path() -> None:
    chat = chat_for(RESPONSES_BODY)
    assert chat.unknown == RESPONSES_UNKNOWN
    assert chat.native is not None and chat.native.api == "openai-responses"
    assert chat.messages[0] == {"role": "user", "content": "hi"}
    assert chat_for({"model": "m", "input": "hi"}).unknown is None


def test_unknown_fields_reach_a_responses_upstream_in_the_clients_body() -> None:
    chat = chat_for(RESPONSES_BODY)
    adapter = adapter_for(get_adapter("openai-responses"), chat)
    dep = _deployment("openai-responses")  # refuse: the upstream speaks the client's format
    adapter.check(chat, dep)
    sent = orjson.loads(adapter.build_request(chat, dep).body)
    assert sent["verbosity_hint"] == "low" and sent["input"][0]["vendor_tag"] == "t"
    assert sent["input"][1]["content"][0]["cache_hint"] == 1
    assert sent["input"][3]["trace"] == 2
    assert notes(chat, dep) is None


@pytest.mark.parametrize("kind", ["openai", "anthropic", "gemini"])
def test_unknown_responses_fields_elsewhere_follow_the_models_policy(kind: str) -> None:
    chat = chat_for(RESPONSES_BODY)
    adapter = adapter_for(get_adapter(kind), chat)
    with pytest.raises(UnsupportedParameter) as info:
        adapter.check(chat, _deployment(kind))
    assert info.value.param == "verbosity_hint" and f"{kind}-model" in str(info.value)
    with pytest.raises(UnsupportedParameter) as info:
        adapter.check(chat, _deployment(kind, "pass"))
    assert info.value.param == "input.0.vendor_tag"  # nested: no place in another format
    drop = _deployment(kind, "drop")
    adapter.check(chat, drop)
    sent = orjson.dumps(orjson.loads(adapter.build_request(chat, drop).body)).decode()
    assert "vendor_tag" not in sent and "verbosity_hint" not in sent
    assert set(notes(chat, drop) or {}) == set(RESPONSES_UNKNOWN)
    top_only = chat_for({"model": "m", "input": "hi", "verbosity_hint": "low"})
    passing = _deployment(kind, "pass")
    adapter = adapter_for(get_adapter(kind), top_only)
    adapter.check(top_only, passing)
    assert orjson.loads(adapter.build_request(top_only, passing).body)["verbosity_hint"] == "low"


def _stream(renderer: ResponsesStreamRenderer, deltas: list[StreamDelta]) -> list[dict[str, Any]]:
    return events(b"".join(renderer.delta(d) for d in deltas) + renderer.end())


def test_stream_renderer_text_then_tool_call() -> None:
    native = parse_responses_request({"model": "m", "input": "hi", "store": False}).responses
    renderer = ResponsesStreamRenderer("rid", "m", 1, native)
    out = _stream(
        renderer,
        [
            StreamDelta(content="Let me "),
            StreamDelta(content="check."),
            StreamDelta(tool_calls=[ToolCallDelta(0, id="c1", name="w")]),
            StreamDelta(tool_calls=[ToolCallDelta(0, arguments='{"city"')]),
            StreamDelta(tool_calls=[ToolCallDelta(0, arguments=':"Oslo"}')]),
            StreamDelta(finish_reason="tool_calls", usage=Usage(5, 7)),
        ],
    )
    assert [e["sequence_number"] for e in out] == list(range(len(out)))
    assert [e["type"] for e in out] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    final = out[-1]["response"]
    assert [i["type"] for i in final["output"]] == ["message", "function_call"]
    assert final["output"][0]["content"][0]["text"] == "Let me check."
    assert final["output"][1]["arguments"] == '{"city":"Oslo"}'
    assert final["output"][1]["call_id"] == "c1"
    assert final["usage"]["input_tokens"] == 5 and final["usage"]["output_tokens"] == 7


def test_stream_renderer_cut_answer_is_incomplete_and_error_fails() -> None:
    native = parse_responses_request({"model": "m", "input": "hi", "store": False}).responses
    out = _stream(
        ResponsesStreamRenderer("r", "m", 1, native),
        [StreamDelta(content="abc"), StreamDelta(finish_reason="length")],
    )
    assert out[-1]["type"] == "response.incomplete"
    assert out[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    renderer = ResponsesStreamRenderer("r", "m", 1, native)
    renderer.delta(StreamDelta(content="abc"))
    failed = events(renderer.error(GatewayError("upstream", "upstream cut the stream")))
    assert [e["type"] for e in failed] == ["error", "response.failed"]
    assert failed[1]["response"]["error"]["message"] == "upstream cut the stream"


DEPLOYMENT = Deployment("d#0", "d", "openai-responses", "up-model", "http://upstream/v1")


def test_native_body_replaces_the_reference_with_stored_items() -> None:
    chat = parse_responses_request(
        {"model": "alias", "input": "next", "previous_response_id": "resp_1"}
        | {"prompt_cache_key": "k"}
    )
    chat.responses.history = [{"type": "reasoning", "id": "rs_1", "summary": []}]
    expected = [
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "message", "role": "user", "content": "next"},
    ]
    body = native_body(chat.responses)
    assert "previous_response_id" not in body and body["prompt_cache_key"] == "k"
    assert body["input"] == expected
    request = ADAPTER.build_request(to_chat_request(chat), DEPLOYMENT)
    sent = orjson.loads(request.body)
    assert request.url == "http://upstream/v1/responses"
    assert sent["model"] == "up-model" and sent["input"] == expected


def test_translated_request_and_refused_parameters() -> None:
    chat = ChatRequest(
        model="x",
        messages=[
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "w", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c", "content": "r"},
        ],
        response_format={"type": "json_object"},
        params={"max_tokens": 9},
    )
    body = translate(chat)
    assert [i["type"] for i in body["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    assert body["max_output_tokens"] == 9 and body["text"] == {"format": {"type": "json_object"}}
    with pytest.raises(UnsupportedParameter):
        ADAPTER.check(ChatRequest(model="x", messages=[], params={"seed": 1}), DEPLOYMENT)


def test_upstream_stream_parser_reads_the_simulated_events() -> None:
    ask = ResponsesAsk(model="m", stream=True, reasoning=True)
    answer = Answer(text=None, tool_name="w", tool_arguments='{"city":"Oslo"}', finish="tool_call")
    parser = ADAPTER.stream_parser()
    deltas: list[StreamDelta] = []
    for frame in ResponsesWire().stream(ask, answer):
        kind, data = frame.decode().strip().split("\n")
        deltas += parser.feed(SSEEvent(data.removeprefix("data: "), kind.removeprefix("event: ")))
    assert parser.finished()
    calls = [tc for d in deltas for tc in d.tool_calls or ()]
    assert calls[0].name == "w" and "".join(c.arguments for c in calls) == '{"city":"Oslo"}'
    assert deltas[-1].finish_reason == "tool_calls"
    assert deltas[-1].usage is not None and deltas[-1].usage.reasoning_tokens == 16
    with pytest.raises(UpstreamError):
        parser.feed(SSEEvent('{"type": "error", "message": "boom"}', "error"))


def test_input_items_page_ids_shapes_and_paging() -> None:
    items: list[dict[str, Any]] = [
        {"role": "user", "content": "a"},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}", "id": "fc_own"},
        {"type": "function_call_output", "call_id": "c", "output": "1"},
        {"role": "assistant", "content": "b"},
    ]
    page = input_items_page(items, "resp_x1", PageQuery(order="asc"))
    assert [i["id"] for i in page["data"]] == ["msg_x1_0", "fc_own", "fco_x1_2", "msg_x1_3"]
    assert page["data"][0]["content"] == [{"type": "input_text", "text": "a"}]
    assert page["data"][0]["type"] == "message" and page["data"][0]["status"] == "completed"
    assert page["data"][3]["content"][0]["type"] == "output_text"
    assert items[0] == {"role": "user", "content": "a"}  # the stored items are not changed
    newest = input_items_page(items, "resp_x1", PageQuery(limit=3))
    assert [i["id"] for i in newest["data"]] == ["msg_x1_3", "fco_x1_2", "fc_own"]
    assert newest["has_more"] is True and newest["last_id"] == "fc_own"
    rest = input_items_page(items, "resp_x1", PageQuery(limit=3, after="fc_own"))
    assert [i["id"] for i in rest["data"]] == ["msg_x1_0"] and rest["has_more"] is False
    empty = input_items_page(items, "resp_x1", PageQuery(after="msg_x1_0"))
    assert empty["data"] == [] and empty["first_id"] is None and not empty["has_more"]


@pytest.mark.parametrize(
    ("query", "param"),
    [({"limit": "0"}, "limit"), ({"limit": "1.5"}, "limit"), ({"order": "random"}, "order")],
)
def test_input_items_query_errors(query: dict[str, str], param: str) -> None:
    with pytest.raises(GatewayError) as info:
        parse_page_query(query)
    assert info.value.status == 400 and info.value.param == param
    assert parse_page_query({}) == PageQuery(limit=20, order="desc", after=None)
    assert parse_page_query({"limit": "100", "order": "asc", "after": "x"}).limit == 100
