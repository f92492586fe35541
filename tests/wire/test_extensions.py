"""Fields beyond the canonical request (issue 12): an Anthropic client's features and unknown
fields at upstreams of the same and of other wire formats (wire/extensions.py), and the
passthrough of an Anthropic request and its stream (anthropic_messages/passthrough.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from modelmix.errors import UnsupportedParameter
from modelmix.providers.base import Deployment, SSEEvent
from modelmix.providers.registry import get_adapter
from modelmix.types import Capabilities, ChatRequest
from modelmix.wire.anthropic_messages.client import MessageStreamRenderer, parse_messages_request
from modelmix.wire.extensions import adapter_for, notes, reasoning_effort
from modelmix.wire.openai_chat.client import parse_chat_request

SIGNED = {"type": "thinking", "thinking": "Let me see.", "signature": "c2lnbmVk"}
USE = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}

#: What Claude Code sends (from a captured request, shortened).
CLAUDE_CODE: dict[str, Any] = {
    "model": "m",
    "max_tokens": 32000,
    "stream": True,
    "system": [
        {"type": "text", "text": "You are Claude Code."},
        {"type": "text", "text": "Be terse.", "cache_control": {"type": "ephemeral"}},
    ],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "list files"}]},
        {"role": "assistant", "content": [SIGNED, {**USE, "caller": None}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.py"},
                {"type": "text", "text": "thanks", "cache_control": {"type": "ephemeral"}},
            ],
        },
        {"role": "system", "content": "Available agent types: ..."},
    ],
    "tools": [
        {
            "name": "Bash",
            "description": "Run a command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
        }
    ],
    "metadata": {"user_id": "device-1"},
    "thinking": {"type": "adaptive"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
}


def _dep(kind: str, **caps: Any) -> Deployment:
    return Deployment(
        id=f"{kind}#0",
        model=f"{kind}-model",
        provider=kind,
        upstream_model=f"{kind}-upstream",
        base_url=f"http://up/{kind}",
        api_key="k",
        capabilities=Capabilities(**caps),
    )


def _claude_code() -> ChatRequest:
    request = parse_messages_request(CLAUDE_CODE)
    assert request.native is not None
    request.native.headers = {"anthropic-beta": "context-management-2025-06-27", "x-other": "no"}
    return request


def test_claude_code_request_is_accepted_with_its_features_recorded() -> None:
    request = _claude_code()
    assert request.native is not None
    assert set(request.native.features) == {"thinking", "context_management", "thinking blocks"}
    assert request.unknown is None  # caller: null is a client default, not an unknown field
    assert request.messages[-1] == {"role": "system", "content": "Available agent types: ..."}
    assistant = next(m for m in request.messages if m["role"] == "assistant")
    assert assistant["tool_calls"][0]["function"]["name"] == "Bash"


def test_same_format_gets_the_client_body_byte_for_byte() -> None:
    request = _claude_code()
    dep = _dep("anthropic")
    adapter = adapter_for(get_adapter("anthropic"), request)
    adapter.check(request, dep)  # the upstream judges its own format
    http = adapter.build_request(request, dep)
    sent = orjson.loads(http.body)
    assert sent == {**CLAUDE_CODE, "model": "anthropic-upstream"}
    assert http.url == "http://up/anthropic/messages"
    assert http.headers["anthropic-beta"] == "context-management-2025-06-27"
    assert "x-other" not in http.headers and http.headers["x-api-key"] == "k"
    assert notes(request, dep) is None


def test_other_format_maps_thinking_to_effort_where_the_model_reasons() -> None:
    request = _claude_code()
    request.params.pop("reasoning_effort")  # no output_config.effort: thinking decides
    adapter = adapter_for(get_adapter("openai"), request)
    reasoning = _dep("openai", reasoning=True)
    body = orjson.loads(adapter.build_request(request, reasoning).body)
    assert body["reasoning_effort"] == "medium"  # adaptive
    assert "context_management" in (notes(request, reasoning) or {})
    plain = _dep("openai")
    body = orjson.loads(adapter.build_request(request, plain).body)
    assert "reasoning_effort" not in body
    assert {"thinking", "context_management", "thinking blocks"} <= set(notes(request, plain) or {})


@pytest.mark.parametrize(
    ("thinking", "effort"),
    [
        ({"type": "enabled", "budget_tokens": 1024}, "low"),
        ({"type": "enabled", "budget_tokens": 8000}, "medium"),
        ({"type": "enabled", "budget_tokens": 32000}, "high"),
        ({"type": "adaptive"}, "medium"),
        ({"type": "disabled"}, None),
    ],
)
def test_thinking_budget_to_effort(thinking: dict[str, Any], effort: str | None) -> None:
    assert reasoning_effort(thinking) == effort


def _with(**extra: Any) -> ChatRequest:
    return parse_messages_request(
        {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}], **extra}
    )


def test_server_tools_are_refused_elsewhere_with_the_field() -> None:
    server = _with(tools=[{"type": "web_search_20250305", "name": "web_search"}])
    adapter = adapter_for(get_adapter("gemini"), server)
    with pytest.raises(UnsupportedParameter) as info:
        adapter.check(server, _dep("gemini"))
    assert info.value.param == "tools.0" and "web_search" in str(info.value)
    adapter_for(get_adapter("anthropic"), server).check(server, _dep("anthropic"))  # native: fine


@pytest.mark.parametrize("policy", ["refuse", "drop", "pass"])
def test_unknown_fields_follow_the_models_policy(policy: str) -> None:
    request = _with(future_knob={"x": 1})
    assert request.unknown == {"future_knob": {"x": 1}}
    dep = _dep("openai", unknown_params=policy)
    adapter = adapter_for(get_adapter("openai"), request)
    if policy == "refuse":
        with pytest.raises(UnsupportedParameter) as info:
            adapter.check(request, dep)
        assert info.value.param == "future_knob" and "openai-model" in str(info.value)
        return
    adapter.check(request, dep)
    body = orjson.loads(adapter.build_request(request, dep).body)
    assert ("future_knob" in body) is (policy == "pass")
    assert ("future_knob" in (notes(request, dep) or {})) is (policy == "drop")


def test_openai_unknown_fields_go_unchanged_to_an_openai_upstream_only() -> None:
    request = parse_chat_request(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "verbosity": "low"}
    )
    openai = adapter_for(get_adapter("openai"), request)
    assert orjson.loads(openai.build_request(request, _dep("openai")).body)["verbosity"] == "low"
    with pytest.raises(UnsupportedParameter, match="verbosity"):
        adapter_for(get_adapter("anthropic"), request).check(request, _dep("anthropic"))


def test_a_plain_request_keeps_the_bare_adapter() -> None:
    request = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert adapter_for(get_adapter("openai"), request) is get_adapter("openai")


def _sse(name: str, data: dict[str, Any]) -> SSEEvent:
    return SSEEvent(data=orjson.dumps(data).decode(), event=name)


def test_passthrough_stream_sends_the_upstreams_events() -> None:
    request = _claude_code()
    parser = adapter_for(get_adapter("anthropic"), request).stream_parser()
    events = [
        _sse(
            "message_start",
            {
                "type": "message_start",
                "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 5}},
            },
        ),
        _sse(
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking"}},
        ),
        _sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "signature_delta", "signature": "c2ln"},
            },
        ),
        _sse(
            "content_block_delta",
            {
                "type": "content_block_delta",
                "index": 1,
                "delta": {"type": "text_delta", "text": "4"},
            },
        ),
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn"},
                "usage": {"output_tokens": 3},
            },
        ),
        _sse("message_stop", {"type": "message_stop"}),
    ]
    deltas = [d for e in events for d in parser.feed(e)]
    assert parser.finished()
    assert [d.content for d in deltas if d.content] == ["4"]  # canonical, for the ledger
    usage = [d.usage for d in deltas if d.usage is not None][-1]
    assert usage.prompt_tokens == 5 and usage.completion_tokens == 3
    renderer = MessageStreamRenderer(id="r1", model="my-route")
    out = b"".join(renderer.delta(d) for d in deltas) + renderer.end()
    frames = [f for f in out.split(b"\n\n") if f]
    assert len(frames) == len(events)  # one frame per upstream event, none added
    start = orjson.loads(frames[0].split(b"data: ", 1)[1])
    assert start["message"]["model"] == "my-route"  # the name the client asked for
    assert b'"signature":"c2ln"' in frames[2]
    assert frames[-1].startswith(b"event: message_stop")
