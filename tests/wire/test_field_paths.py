"""Unknown fields inside an OpenAI Chat request (issue 12): collected by path from messages,
content parts and tool calls, put back at the same place for an OpenAI-format upstream,
refused (path and model named), dropped (noted) or refused-when-passed elsewhere."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from modelmix.errors import UnsupportedParameter
from modelmix.providers.base import Deployment
from modelmix.providers.registry import get_adapter
from modelmix.types import Capabilities
from modelmix.wire.extensions import adapter_for, notes
from modelmix.wire.openai_chat.client import parse_chat_request
from modelmix.wire.openai_chat.field_paths import insert, insert_all, is_nested, nested_path

CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
BODY: dict[str, Any] = {
    "model": "m",
    "messages": [
        {"role": "system", "content": "be terse", "foo": None},  # null: a default, ignored
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi", "cache_hint": {"level": 2}},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://x/y.png"},
                    "prompt_cache_breakpoint": True,
                },
            ],
            "vendor_tag": "abc",
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{**CALL, "trace": 7, "function": {**CALL["function"], "sig": "s"}}],
            "refusal": None,
            "annotations": [],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ],
    "verbosity": "low",
}
NESTED = {
    "messages.1.content.0.cache_hint": {"level": 2},
    "messages.1.vendor_tag": "abc",
    "messages.2.tool_calls.0.trace": 7,
    "messages.2.tool_calls.0.function.sig": "s",
}


def _dep(kind: str, policy: str = "refuse") -> Deployment:
    return Deployment(
        id=f"{kind}#0",
        model=f"{kind}-model",
        provider=kind,
        upstream_model=f"{kind}-upstream",
        base_url=f"http://up/{kind}",
        api_key="k",
        capabilities=Capabilities(unknown_params=policy),
    )


def test_paths_and_insertion() -> None:
    assert nested_path("messages", 1, "content", 0, "foo") == "messages.1.content.0.foo"
    assert is_nested("messages.1.foo") and not is_nested("verbosity")
    assert not is_nested("a.b", {"a.b": 1})  # a top-level key with a dot in its name
    body: dict[str, Any] = {"messages": [{"role": "user", "content": [{"type": "text"}]}]}
    assert insert(body, "messages.0.content.0.foo", 1)
    assert body["messages"][0]["content"][0]["foo"] == 1
    assert not insert(body, "messages.3.foo", 1)  # no such message: nothing changed
    assert not insert(body, "messages.0.content.foo", 1)  # a list has no key "foo"
    assert not insert(body, "messages.x.foo", 1)
    missed = insert_all(body, {"top": 2, "a.b": 3, "messages.9.bar": 4}, {"a.b": 3})
    assert missed == ["messages.9.bar"] and body["top"] == 2 and body["a.b"] == 3


def test_nested_unknown_fields_are_collected_by_path() -> None:
    request = parse_chat_request(copy.deepcopy(BODY))
    assert request.unknown == {"verbosity": "low", **NESTED}
    # the canonical request is as without them
    assert request.messages[1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "hi"},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        ],
    }
    plain = parse_chat_request({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    assert plain.unknown is None and plain.native is None


def test_nested_fields_reach_an_openai_upstream_at_their_place() -> None:
    request = parse_chat_request(copy.deepcopy(BODY))
    adapter = adapter_for(get_adapter("openai"), request)
    dep = _dep("openai")  # refuse: irrelevant, the upstream speaks the client's format
    adapter.check(request, dep)
    sent = orjson.loads(adapter.build_request(request, dep).body)
    assert sent["verbosity"] == "low"
    assert sent["messages"][1]["content"][0]["cache_hint"] == {"level": 2}
    assert sent["messages"][1]["vendor_tag"] == "abc"
    assert sent["messages"][2]["tool_calls"][0]["trace"] == 7
    assert sent["messages"][2]["tool_calls"][0]["function"]["sig"] == "s"
    assert "prompt_cache_breakpoint" not in sent["messages"][1]["content"][1]  # a hint, ignored
    assert "foo" not in sent["messages"][0]
    assert notes(request, dep) is None
    # the request itself is not changed (retries and fallbacks reuse it)
    assert "vendor_tag" not in request.messages[1]


def test_nested_fields_elsewhere_follow_the_models_policy() -> None:
    request = parse_chat_request({**copy.deepcopy(BODY), "verbosity": None})
    adapter = adapter_for(get_adapter("anthropic"), request)
    with pytest.raises(UnsupportedParameter) as info:
        adapter.check(request, _dep("anthropic"))
    assert info.value.param == "messages.1.vendor_tag"  # the first one, in body order
    assert "anthropic-model" in str(info.value)
    # pass: a nested field has no place in another format's body; refused with the reason
    with pytest.raises(UnsupportedParameter) as info:
        adapter.check(request, _dep("anthropic", "pass"))
    assert info.value.param == "messages.1.vendor_tag"  # the first one, in body order
    assert "client's wire format" in str(info.value)
    drop = _dep("anthropic", "drop")
    adapter.check(request, drop)
    sent = orjson.loads(adapter.build_request(request, drop).body)
    assert "cache_hint" not in orjson.dumps(sent).decode()
    assert set(notes(request, drop) or {}) == set(NESTED)
