"""Forward-compatible requests through a real gateway with the real SDKs (issue 12): what a
client library sends by default is accepted, unknown and vendor fields reach an upstream of the
client's format unchanged and are refused (naming field and model) or dropped (noted on the
ledger row) elsewhere; count_tokens; unknown endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from modelmix.config import parse_config
from modelmix.simulated import Simulator
from tests.e2e.conftest import RunningGateway
from tests.e2e.ledger_rows import request_row
from tests.e2e.test_anthropic_sdk import WEATHER_TOOL as WEATHER


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("forward")

    def model(name: str, kind: str, **kw: Any) -> dict[str, Any]:
        base = {"name": name, "provider": kind, "model": name, "base_url": simulator.base_url(kind)}
        return {**base, "price": {"input": "1", "output": "5"}, **kw}

    config = parse_config(
        {
            "models": [
                model("claude-sim", "anthropic"),
                model("gpt-sim", "openai", capabilities={"reasoning": True}),
                model("gemini-sim", "gemini"),
                model("gemini-drop", "gemini", params={"unknown": "drop"}),
                model("gpt-pass", "openai"),
            ],
            "ledger": {"path": str(tmp / "ledger.db"), "flush_interval": 0.05},
        }
    )
    running = RunningGateway(config, env={})
    yield running
    running.stop()


def _anthropic(gw: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="sk-test", max_retries=0)


def _openai(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="sk-test", max_retries=0)


def _db(gw: RunningGateway) -> Path:
    return Path(gw.gateway.config.ledger.path)


@pytest.mark.parametrize("model", ["claude-sim", "gemini-sim"])
def test_sdk_model_dump_of_a_tool_use_block_is_accepted(gw: RunningGateway, model: str) -> None:
    c = _anthropic(gw)
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = c.messages.create(model=model, max_tokens=200, tools=[WEATHER], messages=messages)
    use = next(b for b in first.content if b.type == "tool_use")
    dumped = use.model_dump()
    assert "caller" in dumped and dumped["caller"] is None  # what the SDK really sends back
    messages += [
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "rain, 9C"}],
        },
    ]
    second = c.messages.create(model=model, max_tokens=200, tools=[WEATHER], messages=messages)
    assert "rain, 9C" in second.content[0].text  # type: ignore[union-attr]


def test_thinking_signatures_survive_a_tool_loop(gw: RunningGateway) -> None:
    c = _anthropic(gw)
    thinking: Any = {"type": "enabled", "budget_tokens": 2048}
    messages: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    first = c.messages.create(
        model="claude-sim", max_tokens=4000, tools=[WEATHER], messages=messages, thinking=thinking
    )
    assert [b.type for b in first.content] == ["thinking", "tool_use"]
    use = first.content[1]
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sun"}],
        },  # type: ignore[union-attr]
    ]
    second = c.messages.create(
        model="claude-sim", max_tokens=4000, tools=[WEATHER], messages=messages, thinking=thinking
    )
    assert second.content[-1].text.endswith("sun")  # type: ignore[union-attr]
    # a tampered signature is refused by the upstream, as Anthropic does: proof it is checked
    tampered = first.content[0].model_dump()
    tampered["signature"] = "AAAA" + tampered["signature"][4:]
    messages[1] = {"role": "assistant", "content": [tampered, use.model_dump()]}
    with pytest.raises(anthropic.BadRequestError, match="signature"):
        c.messages.create(
            model="claude-sim",
            max_tokens=4000,
            tools=[WEATHER],
            messages=messages,
            thinking=thinking,
        )


def test_thinking_elsewhere_is_a_reasoning_effort_or_a_ledger_note(
    gw: RunningGateway, simulator: Simulator
) -> None:
    c = _anthropic(gw)
    thinking: Any = {"type": "enabled", "budget_tokens": 20000}
    raw = c.messages.with_raw_response.create(
        model="gpt-sim",
        max_tokens=20000,
        thinking=thinking,
        messages=[{"role": "user", "content": "hi"}],
    )
    sent = [r for r in simulator.requests if r.kind == "openai"][-1].body
    assert sent["reasoning_effort"] == "high"
    raw = c.messages.with_raw_response.create(
        model="gemini-sim",
        max_tokens=300,
        thinking={"type": "adaptive"},
        messages=[{"role": "user", "content": "hi"}],  # type: ignore[typeddict-item]
    )
    gw.flush()
    row = request_row(_db(gw), raw.headers["x-modelmix-request-id"])
    assert "thinking" in json.loads(row["decision"])["left_out"]["gemini-sim"]


def test_cache_control_reaches_an_anthropic_upstream_byte_for_byte(
    gw: RunningGateway, simulator: Simulator
) -> None:
    system = [
        {"type": "text", "text": "You are terse."},
        {
            "type": "text",
            "text": "A long, stable prefix.",
            "cache_control": {"type": "ephemeral", "ttl": "1h"},
        },
    ]
    body = {
        "model": "claude-sim",
        "max_tokens": 100,
        "system": system,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
        "future_field": {"x": 1},
    }
    r = httpx.post(
        gw.url + "/v1/messages",
        json=body,
        headers={"anthropic-version": "2023-06-01", "anthropic-beta": "some-beta-2099-01-01"},
    )
    assert r.status_code == 200, r.text
    got = [q for q in simulator.requests if q.kind == "anthropic"][-1]
    assert got.body["system"] == system and got.body["messages"] == body["messages"]
    assert got.body["future_field"] == {"x": 1}  # unknown, same format: unchanged
    assert got.headers["anthropic-beta"] == "some-beta-2099-01-01"


def test_openai_vendor_fields(gw: RunningGateway, simulator: Simulator) -> None:
    c = _openai(gw)
    messages: Any = [{"role": "user", "content": "hi"}]
    extra = {"vendor_knob": {"a": 1}}
    done = c.chat.completions.create(
        model="gpt-sim",
        messages=messages,
        verbosity="low",
        logit_bias={"50256": -100},
        extra_body=extra,
    )
    assert done.choices[0].message.content
    sent = [r for r in simulator.requests if r.kind == "openai"][-1].body
    assert sent["verbosity"] == "low" and sent["logit_bias"] == {"50256": -100}
    assert sent["vendor_knob"] == {"a": 1}
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="claude-sim", messages=messages, extra_body=extra)
    assert "vendor_knob" in info.value.message and "claude-sim" in info.value.message
    raw = c.chat.completions.with_raw_response.create(
        model="gemini-drop", messages=messages, extra_body=extra
    )
    gw.flush()
    row = request_row(_db(gw), raw.headers["x-modelmix-request-id"])
    assert "vendor_knob" in json.loads(row["decision"])["left_out"]["gemini-drop"]


def test_openai_nested_unknown_fields(gw: RunningGateway, simulator: Simulator) -> None:
    """Keys inside messages, content parts and tool calls: unchanged to an OpenAI-format
    upstream, refused naming path and model elsewhere, dropped and noted where configured."""
    c = _openai(gw)
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages: Any = [
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_hint": "x"}]},
        {"role": "assistant", "content": None, "tool_calls": [{**call, "trace": 7}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42", "vendor_tag": "t"},
        {"role": "user", "content": "and?", "refusal": None},  # null: a default, ignored
    ]
    done = c.chat.completions.create(model="gpt-sim", messages=messages)
    assert done.choices[0].message.content
    sent = [r for r in simulator.requests if r.kind == "openai"][-1].body
    assert sent["messages"][0]["content"][0]["cache_hint"] == "x"
    assert sent["messages"][1]["tool_calls"][0]["trace"] == 7
    assert sent["messages"][2]["vendor_tag"] == "t"
    assert "refusal" not in sent["messages"][3]
    with pytest.raises(openai.BadRequestError) as info:
        c.chat.completions.create(model="claude-sim", messages=messages)
    assert info.value.status_code == 400
    assert "messages.0.content.0.cache_hint" in info.value.message
    assert "claude-sim" in info.value.message
    raw = c.chat.completions.with_raw_response.create(model="gemini-drop", messages=messages)
    assert raw.parse().choices[0].message.content
    gw.flush()
    row = request_row(_db(gw), raw.headers["x-modelmix-request-id"])
    left_out = json.loads(row["decision"])["left_out"]["gemini-drop"]
    assert set(left_out) == {
        "messages.0.content.0.cache_hint",
        "messages.1.tool_calls.0.trace",
        "messages.2.vendor_tag",
    }


def test_count_tokens(gw: RunningGateway) -> None:
    c = _anthropic(gw)
    messages: Any = [{"role": "user", "content": "How many tokens is this prompt?"}]
    exact = c.messages.with_raw_response.count_tokens(model="claude-sim", messages=messages)
    assert exact.parse().input_tokens > 0
    assert "x-modelmix-tokens-estimated" not in exact.headers
    estimate = c.messages.with_raw_response.count_tokens(model="gpt-sim", messages=messages)
    assert estimate.parse().input_tokens > 0
    assert estimate.headers["x-modelmix-tokens-estimated"] == "true"
    assert json.loads(estimate.text())["estimated"] is True
    gw.flush()
    row = request_row(_db(gw), exact.headers["x-modelmix-request-id"])
    assert json.loads(row["decision"])["count_tokens"]["exact"] is True
    with pytest.raises(anthropic.NotFoundError):
        c.messages.count_tokens(model="no-such-model", messages=messages)


def test_unknown_endpoint_says_not_implemented(gw: RunningGateway) -> None:
    r = httpx.post(gw.url + "/v1/frobnicate", json={})
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "endpoint_not_implemented"
    assert "POST /v1/messages/count_tokens" in error["message"]
    assert "POST /v1/chat/completions" in error["message"]
