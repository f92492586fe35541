"""The official anthropic SDK against a running gateway, routed to every wire format."""

from __future__ import annotations

import anthropic
import pytest

from tests.e2e.conftest import RunningGateway
from tests.e2e.ledger_rows import request_row

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
MODELS = ["gpt-4o-mini", "claude-haiku", "gemini-flash"]


def client(gw: RunningGateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.url, api_key="anything", max_retries=0)


@pytest.mark.parametrize("model", MODELS)
def test_message_with_system_prompt(gateway: RunningGateway, model: str) -> None:
    raw = client(gateway).messages.with_raw_response.create(
        model=model,
        max_tokens=200,
        system="You are terse.",
        messages=[{"role": "user", "content": "What is 6+7?"}],
    )
    msg = raw.parse()
    assert msg.content[0].type == "text" and "13" in msg.content[0].text
    assert msg.stop_reason == "end_turn"
    assert msg.usage.input_tokens > 0 and msg.usage.output_tokens > 0
    gateway.flush()
    row = request_row(gateway.gateway.config.ledger_location, raw.headers["x-modelmix-request-id"])
    assert row["api"] == "anthropic" and row["final_model"] == model


@pytest.mark.parametrize("model", MODELS)
def test_streamed_message(gateway: RunningGateway, model: str) -> None:
    with client(gateway).messages.stream(
        model=model, max_tokens=200, messages=[{"role": "user", "content": "What is 9+9?"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert "18" in text
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("streamed", [False, True])
def test_tool_use_round_trip(gateway: RunningGateway, model: str, streamed: bool) -> None:
    c = client(gateway)
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": "Weather in Rome?"}]
    if streamed:
        with c.messages.stream(
            model=model, max_tokens=300, tools=[WEATHER_TOOL], messages=messages
        ) as stream:
            first = stream.get_final_message()
    else:
        first = c.messages.create(
            model=model, max_tokens=300, tools=[WEATHER_TOOL], messages=messages
        )
    assert first.stop_reason == "tool_use"
    tool_use = next(b for b in first.content if b.type == "tool_use")
    assert tool_use.name == "get_weather" and isinstance(tool_use.input["city"], str)
    messages += [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": tool_use.id, "content": "rainy, 14C"}
            ],
        },
    ]
    second = c.messages.create(model=model, max_tokens=300, tools=[WEATHER_TOOL], messages=messages)
    assert second.stop_reason == "end_turn"
    assert "rainy" in second.content[0].text


def test_mid_stream_failure_raises_in_the_sdk(gateway: RunningGateway) -> None:
    with (
        pytest.raises(anthropic.APIError),
        client(gateway).messages.stream(
            model="cutter-anthropic",
            max_tokens=500,
            messages=[{"role": "user", "content": "Tell me a long story about a cat and a dog"}],
        ) as stream,
    ):
        for _ in stream.text_stream:
            pass


def test_errors_in_anthropic_format(gateway: RunningGateway) -> None:
    c = client(gateway)
    with pytest.raises(anthropic.NotFoundError) as missing:
        c.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as bad:
        c.messages.create(
            model="gpt-4o-mini", max_tokens=0, messages=[{"role": "user", "content": "x"}]
        )
    assert bad.value.body["type"] == "error"  # type: ignore[index]
    with pytest.raises(anthropic.InternalServerError):
        c.messages.create(
            model="broken", max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )


def test_models_list_in_anthropic_format(gateway: RunningGateway) -> None:
    ids = {m.id for m in client(gateway).models.list()}
    assert {"auto", "claude-haiku"} <= ids
