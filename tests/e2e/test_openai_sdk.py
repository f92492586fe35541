"""The official openai SDK against a running gateway, upstreams in all three wire formats."""

from __future__ import annotations

import json
import time
from decimal import Decimal

import openai
import pytest
from genai_prices import Usage, calc_price

from modelmix.tokens import count_tokens
from tests.e2e.conftest import RunningGateway
from tests.e2e.ledger_rows import attempt_rows, request_row

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


def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="anything", max_retries=0)


@pytest.mark.parametrize(
    ("model", "provider_id", "model_ref"),
    [
        ("gpt-4o-mini", "openai", "gpt-4o-mini"),
        ("claude-haiku", "anthropic", "claude-3-5-haiku-20241022"),
        ("gemini-flash", "google", "gemini-1.5-flash"),
    ],
)
def test_plain_answer_with_cost_from_genai_prices(
    gateway: RunningGateway, model: str, provider_id: str, model_ref: str
) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "What is 2+2?"}]
    )
    reply = raw.parse()
    assert "4" in (reply.choices[0].message.content or "")
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == model
    assert abs(reply.created - time.time()) < 60  # a real timestamp, whatever the upstream
    assert reply.usage is not None and reply.usage.prompt_tokens > 0
    request_id = raw.headers["x-modelmix-request-id"]
    assert raw.headers["x-modelmix-model"] == model

    gateway.flush()
    row = request_row(gateway.gateway.config.ledger_location, request_id)
    expected = calc_price(
        Usage(input_tokens=reply.usage.prompt_tokens, output_tokens=reply.usage.completion_tokens),
        model_ref=model_ref,
        provider_id=provider_id,
    ).total_price
    assert Decimal(row["cost_usd"]) == expected
    assert Decimal(raw.headers["x-modelmix-cost-usd"]) == expected
    assert row["prompt_tokens"] == reply.usage.prompt_tokens
    assert row["status"] == "ok" and row["final_model"] == model
    assert row["config_hash"] == gateway.gateway.config_hash


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku", "gemini-flash"])
def test_streaming_with_usage(gateway: RunningGateway, model: str) -> None:
    stream = client(gateway).chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "What is 3+4?"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text = ""
    finish = None
    usage = None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage:
            usage = chunk.usage
    assert "7" in text
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens > 0


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku", "gemini-flash"])
def test_tool_call_and_tool_result_round_trip(gateway: RunningGateway, model: str) -> None:
    c = client(gateway)
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = c.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert isinstance(json.loads(call.function.arguments)["city"], str)
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    second = c.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert "sunny" in (second.choices[0].message.content or "")


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku", "gemini-flash"])
def test_streamed_tool_call(gateway: RunningGateway, model: str) -> None:
    with client(gateway).chat.completions.stream(
        model=model,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL],
    ) as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    assert final.choices[0].finish_reason == "tool_calls"


def test_json_schema_output(gateway: RunningGateway) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    reply = client(gateway).chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "A person"}],
        response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}},
    )
    data = json.loads(reply.choices[0].message.content or "")
    assert isinstance(data["name"], str) and isinstance(data["age"], int)


def test_json_request_skips_model_without_json_support(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(
            model="to-claude",
            messages=[{"role": "user", "content": "json please"}],
            response_format={"type": "json_object"},
        )
    assert "claude-haiku: does not support json_object output" in str(info.value)


def test_fallback_after_upstream_failure(gateway: RunningGateway) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is 5+5?"}]
    )
    assert "10" in (raw.parse().choices[0].message.content or "")
    assert raw.headers["x-modelmix-model"] == "gpt-4o-mini"
    assert raw.headers["x-modelmix-route"] == "auto"
    request_id = raw.headers["x-modelmix-request-id"]
    gateway.flush()
    attempts = attempt_rows(gateway.gateway.config.ledger_location, request_id)
    assert [(a["model"], a["status"], a["http_status"]) for a in attempts] == [
        ("broken", "error", 500),
        ("broken", "error", 500),
        ("gpt-4o-mini", "ok", 200),
    ]
    row = request_row(gateway.gateway.config.ledger_location, request_id)
    assert row["route"] == "auto" and row["final_model"] == "gpt-4o-mini"
    decision = json.loads(row["decision"])
    assert [c["model"] for c in decision["candidates"]] == ["broken", "gpt-4o-mini"]


def test_streaming_fallback_before_first_byte(gateway: RunningGateway) -> None:
    stream = client(gateway).chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "What is 1+1?"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "2" in text


def test_mid_stream_failure_is_an_explicit_error(gateway: RunningGateway) -> None:
    prompt = "Tell me a long story about a cat and a dog"
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="cutter", messages=[{"role": "user", "content": prompt}], stream=True
    )
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in raw.parse():
            if chunk.choices:
                got.append(chunk.choices[0].delta.content or "")
    assert "".join(got)  # some text arrived before the cut
    assert "failed after it had started" in str(info.value)

    # No usage came, but text was delivered: the ledger bills an estimate, marked as one.
    gateway.flush()
    db = gateway.gateway.config.ledger_location
    request_id = raw.headers["x-modelmix-request-id"]
    (attempt,) = attempt_rows(db, request_id)
    assert attempt["status"] == "cut"
    assert attempt["completion_tokens"] == count_tokens("".join(got))
    assert attempt["prompt_tokens"] == count_tokens(prompt) + 4
    assert "tokens estimated" in attempt["price_source"]
    row = request_row(db, request_id)
    expected = Decimal(attempt["prompt_tokens"] + attempt["completion_tokens"]) / 10**6
    assert Decimal(row["cost_usd"]) == expected > 0  # cutter: $1/M in and out


def test_unpriced_model_has_no_cost_header(gateway: RunningGateway) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="unpriced", messages=[{"role": "user", "content": "What is 2+2?"}]
    )
    assert "4" in (raw.parse().choices[0].message.content or "")
    assert "x-modelmix-cost-usd" not in raw.headers  # unknown, not $0
    gateway.flush()
    row = request_row(gateway.gateway.config.ledger_location, raw.headers["x-modelmix-request-id"])
    assert row["unpriced"] == 1 and row["completion_tokens"] > 0


def test_upstream_errors_map_to_meaningful_statuses(gateway: RunningGateway) -> None:
    c = client(gateway)
    with pytest.raises(openai.RateLimitError) as limited:
        c.chat.completions.create(model="all-broken", messages=[{"role": "user", "content": "x"}])
    assert limited.value.response.headers.get("retry-after") == "1"
    with pytest.raises(openai.InternalServerError) as broken:
        c.chat.completions.create(
            model="broken-direct", messages=[{"role": "user", "content": "x"}]
        )
    assert broken.value.status_code == 502
    with pytest.raises(openai.APIStatusError) as slow:
        c.chat.completions.create(model="sluggish", messages=[{"role": "user", "content": "x"}])
    assert slow.value.status_code == 504


def test_models_list(gateway: RunningGateway) -> None:
    ids = {m.id for m in client(gateway).models.list()}
    assert {"auto", "gpt-4o-mini", "claude-haiku", "gemini-flash"} <= ids


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gemini-flash"])
def test_logprobs_in_openais_shape_from_any_upstream(gateway: RunningGateway, model: str) -> None:
    messages = [{"role": "user", "content": "What is 2+2?"}]
    reply = client(gateway).chat.completions.create(
        model=model, messages=messages, logprobs=True, top_logprobs=2
    )
    logprobs = reply.choices[0].logprobs
    assert logprobs is not None and logprobs.content
    assert "".join(t.token for t in logprobs.content) == reply.choices[0].message.content
    assert all(t.logprob < 0 and len(t.top_logprobs) == 2 for t in logprobs.content)
    assert all(t.bytes == list(t.token.encode()) for t in logprobs.content)

    stream = client(gateway).chat.completions.create(
        model=model, messages=messages, logprobs=True, stream=True
    )
    text = tokens = ""
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
            assert chunk.choices[0].logprobs is not None and chunk.choices[0].logprobs.content
            tokens += "".join(t.token for t in chunk.choices[0].logprobs.content)
    assert tokens == text and text
