"""The official openai SDK's ``client.responses`` against a running gateway, with simulated
upstreams of every wire format: OpenAI Chat Completions, Anthropic, Gemini (translated) and an
upstream that speaks the Responses API itself (passed through natively). Every test runs on a
SQLite and on a PostgreSQL ledger (stored responses live in the ledger's database)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from pydantic import BaseModel

from modelmix.config import parse_config
from modelmix.ledger.db import Location
from modelmix.simulated import Simulator
from tests.conftest import BACKENDS, ledger_location, ledger_settings
from tests.e2e.conftest import RunningGateway, e2e_config
from tests.e2e.ledger_rows import attempt_rows, request_row

UPSTREAMS = ["gpt-4o-mini", "claude-haiku", "gemini-flash", "gpt-native"]
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}
ADMIN = "mm-admin-responses-e2e"


def _config(sim: Simulator, tmp: Path, ledger: Location) -> Any:
    data = e2e_config(sim, tmp, **ledger_settings(ledger, tmp)).model_dump(exclude_none=True)
    data["models"].append(
        {
            "name": "gpt-native",
            "provider": "openai-responses",
            "model": "gpt-4.1-mini",
            "base_url": sim.base_url("openai-responses"),
        }
    )
    data["models"].append(
        {
            "name": "claude-drop",
            "provider": "anthropic",
            "model": "claude-3-5-haiku-20241022",
            "base_url": sim.base_url("anthropic"),
            "params": {"unknown": "drop"},
        }
    )
    data["routes"].append({"name": "native-fallback", "models": ["broken", "gpt-native"]})
    data["budgets"] = {
        "tags": {"project:atlas": [{"kind": "hard", "period": "total", "limit_usd": "0"}]}
    }
    return parse_config(data)


@pytest.fixture(scope="module", params=BACKENDS)
def gw(
    request: pytest.FixtureRequest, simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("responses")
    running = RunningGateway(_config(simulator, tmp, ledger_location(request, tmp)), env={})
    yield running
    running.stop()


def client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="anything", max_retries=0)


def last_upstream_body(sim: Simulator) -> Any:
    return sim.requests[-1].body


@pytest.mark.parametrize("model", UPSTREAMS)
def test_json_answer_usage_headers_and_ledger(gw: RunningGateway, model: str) -> None:
    raw = client(gw).responses.with_raw_response.create(
        model=model, input="What is 2+2?", instructions="Answer briefly."
    )
    reply = raw.parse()
    assert reply.object == "response" and reply.status == "completed"
    assert reply.id.startswith("resp_") and reply.model == model
    assert "2 + 2 = 4" in reply.output_text
    assert reply.instructions == "Answer briefly."
    assert reply.usage is not None and reply.usage.input_tokens > 0
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens
    request_id = raw.headers["x-modelmix-request-id"]
    assert reply.id == "resp_" + request_id
    assert raw.headers["x-modelmix-model"] == model
    gw.flush()
    row = request_row(gw.gateway.config.ledger_location, request_id)
    assert row["api"] == "responses" and row["status"] == "ok"
    assert row["final_model"] == model
    assert row["prompt_tokens"] == reply.usage.input_tokens
    assert row["completion_tokens"] == reply.usage.output_tokens


@pytest.mark.parametrize("model", UPSTREAMS)
def test_stream_event_sequence(gw: RunningGateway, model: str) -> None:
    events = list(client(gw).responses.create(model=model, input="What is 3+3?", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) >= 2 and len(deltas) == len(kinds) - 8
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(d.delta for d in deltas)
    assert "3 + 3 = 6" in text
    done = events[-1].response  # type: ignore[union-attr]
    assert done.status == "completed" and done.output_text == text
    assert done.usage is not None and done.usage.output_tokens > 0
    assert events[0].response.status == "in_progress"  # type: ignore[union-attr]
    assert events[2].item.id == deltas[0].item_id == done.output[0].id  # type: ignore[union-attr]


@pytest.mark.parametrize("model", UPSTREAMS)
@pytest.mark.parametrize("stream", [False, True])
def test_tool_round_trip_with_function_call_output(
    gw: RunningGateway, model: str, stream: bool
) -> None:
    c = client(gw)
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = c.responses.create(model=model, input=question, tools=[WEATHER], store=False)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)
    # stateless, as agent frameworks do: the whole conversation goes back
    history: list[Any] = [
        *question,
        calls[0].model_dump(exclude_none=True),
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny, 21 C"},
    ]
    if stream:
        events = list(c.responses.create(model=model, input=history, tools=[WEATHER], stream=True))
        final = events[-1].response  # type: ignore[union-attr]
    else:
        final = c.responses.create(model=model, input=history, tools=[WEATHER])
    # (Gemini's adapter wraps a tool result as {"result": ...})
    assert "get_weather returned:" in final.output_text and "sunny, 21 C" in final.output_text


def test_streamed_function_call_events(gw: RunningGateway) -> None:
    events = list(
        client(gw).responses.create(
            model="claude-haiku", input="Weather in Oslo?", tools=[WEATHER], stream=True
        )
    )
    kinds = [e.type for e in events]
    assert kinds[2] == "response.output_item.added"
    assert "response.function_call_arguments.delta" in kinds
    assert kinds[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    args = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")  # type: ignore[union-attr]
    call = events[-1].response.output[0]  # type: ignore[union-attr]
    assert call.type == "function_call" and call.arguments == args
    assert json.loads(args)["city"]


class Person(BaseModel):
    name: str
    age: int


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gemini-flash", "gpt-native"])
def test_structured_output_text_format(gw: RunningGateway, model: str) -> None:
    parsed = client(gw).responses.parse(model=model, input="Invent a person.", text_format=Person)
    person = parsed.output_parsed
    assert isinstance(person, Person)
    schema = Person.model_json_schema()
    jsonschema.validate(json.loads(parsed.output_text), schema)
    assert parsed.text is not None and parsed.text.format is not None
    assert parsed.text.format.type == "json_schema"


def test_json_schema_refused_by_a_model_without_it(gw: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).responses.parse(
            model="claude-haiku", input="Invent a person.", text_format=Person
        )
    assert "claude-haiku" in info.value.message


@pytest.mark.parametrize("model", UPSTREAMS)
def test_previous_response_id_rebuilds_the_conversation(
    simulator: Simulator, gw: RunningGateway, model: str
) -> None:
    c = client(gw)
    first = c.responses.create(
        model=model, input="What is 5+5?", instructions="Be exact.", tools=[WEATHER]
    )
    call = first.output[-1]
    assert call.type == "function_call"
    second = c.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rain"}],
        tools=[WEATHER],
    )
    assert second.previous_response_id == first.id
    assert "get_weather returned:" in second.output_text and "rain" in second.output_text
    third = c.responses.create(model="gpt-4o-mini", previous_response_id=second.id, input="7*6?")
    assert "7 * 6 = 42" in third.output_text
    # the upstream of the third turn got the whole conversation, without the instructions
    # (OpenAI does not carry them over from a previous response)
    sent = last_upstream_body(simulator)["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[0]["content"] == "What is 5+5?" and sent[2]["content"] == "rain"
    assert "get_weather returned:" in sent[3]["content"]


def test_native_upstream_gets_the_client_body_and_the_stored_items(
    simulator: Simulator, gw: RunningGateway
) -> None:
    c = client(gw)
    first = c.responses.create(
        model="gpt-native", input="What is 2+2?", reasoning={"effort": "low", "summary": "auto"}
    )
    kinds = [item.type for item in first.output]
    assert kinds == ["reasoning", "message"]  # the upstream's reasoning item reaches the client
    assert first.usage is not None and first.usage.output_tokens_details.reasoning_tokens == 16
    second = c.responses.create(
        model="gpt-native",
        previous_response_id=first.id,
        input="And 3+3?",
        reasoning={"effort": "low", "summary": "auto"},
        extra_body={"prompt_cache_key": "conversation-42"},
    )
    assert "3 + 3 = 6" in second.output_text
    sent = last_upstream_body(simulator)
    assert "previous_response_id" not in sent and sent["model"] == "gpt-4.1-mini"
    assert sent["prompt_cache_key"] == "conversation-42"  # passed through as the client sent it
    assert [i.get("type") for i in sent["input"]] == ["message", "reasoning", "message", "message"]
    assert sent["input"][1]["id"] == first.output[0].id


def test_chat_client_routed_to_a_responses_upstream(
    simulator: Simulator, gw: RunningGateway
) -> None:
    reply = client(gw).chat.completions.create(
        model="gpt-native",
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is 9*4?"},
        ],
        max_completion_tokens=50,
    )
    assert "9 * 4 = 36" in (reply.choices[0].message.content or "")
    sent = last_upstream_body(simulator)
    assert sent["input"][0] == {"type": "message", "role": "system", "content": "Be brief."}
    assert sent["max_output_tokens"] == 50 and sent["store"] is False


def test_retrieve_and_delete(gw: RunningGateway) -> None:
    c = client(gw)
    made = c.responses.create(model="gemini-flash", input="What is 1+1?")
    got = c.responses.retrieve(made.id)
    assert got.id == made.id and got.output_text == made.output_text
    assert got.usage == made.usage
    c.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError) as info:
        c.responses.create(model="gpt-4o-mini", previous_response_id=made.id, input="more")
    assert info.value.body["param"] == "previous_response_id"  # type: ignore[index]
    with pytest.raises(openai.NotFoundError):
        c.responses.delete(made.id)


def test_store_false_is_not_kept(gw: RunningGateway) -> None:
    c = client(gw)
    made = c.responses.create(model="gpt-4o-mini", input="hi", store=False)
    assert made.store is False
    with pytest.raises(openai.NotFoundError):
        c.responses.retrieve(made.id)


def test_streamed_response_is_stored(gw: RunningGateway) -> None:
    c = client(gw)
    events = list(c.responses.create(model="claude-haiku", input="What is 4+4?", stream=True))
    done = events[-1].response  # type: ignore[union-attr]
    assert c.responses.retrieve(done.id).output_text == done.output_text


def test_route_fallback_and_attempts_in_the_ledger(gw: RunningGateway) -> None:
    raw = client(gw).responses.with_raw_response.create(model="native-fallback", input="2+2?")
    assert "2 + 2 = 4" in raw.parse().output_text
    assert raw.headers["x-modelmix-model"] == "gpt-native"
    assert raw.headers["x-modelmix-route"] == "native-fallback"
    gw.flush()
    db = gw.gateway.config.ledger_location
    request_id = raw.headers["x-modelmix-request-id"]
    assert request_row(db, request_id)["route"] == "native-fallback"
    chain = [(a["model"], a["status"]) for a in attempt_rows(db, request_id)]
    assert chain[0][0] == "broken" and chain[-1] == ("gpt-native", "ok")


def test_budget_refuses_in_openai_format(gw: RunningGateway) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        client(gw).responses.create(model="gpt-4o-mini", input="hi", metadata={"project": "atlas"})
    assert info.value.code == "budget_exceeded"


def test_stream_cut_after_first_token_ends_with_error_and_failed(gw: RunningGateway) -> None:
    events = list(client(gw).responses.create(model="cutter", input="Tell me a story", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and "response.output_text.delta" in kinds
    assert kinds[-2:] == ["error", "response.failed"]
    assert events[-1].response.status == "failed"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"background": True}, "background"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"text": {"verbosity": "high"}}, "text.verbosity"),
    ],
)
def test_refused_with_a_400_naming_the_field(
    gw: RunningGateway, kwargs: dict[str, Any], param: str
) -> None:
    kwargs.setdefault("input", "hi")
    with pytest.raises(openai.BadRequestError) as info:
        client(gw).responses.create(model="gpt-4o-mini", **kwargs)
    assert info.value.body["param"] == param  # type: ignore[index]
    assert info.value.type == "invalid_request_error"


def test_unknown_model_is_a_404(gw: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError):
        client(gw).responses.create(model="no-such-model", input="hi")


def test_native_stream_keeps_the_upstream_reasoning_item(gw: RunningGateway) -> None:
    events = list(
        client(gw).responses.create(
            model="gpt-native",
            input="What is 2+2?",
            reasoning={"effort": "low", "summary": "auto"},
            stream=True,
        )
    )
    assert [e.sequence_number for e in events] == list(range(len(events)))
    added = [e.item.type for e in events if e.type == "response.output_item.added"]  # type: ignore[union-attr]
    assert added == ["reasoning", "message"]
    done = events[-1].response  # type: ignore[union-attr]
    assert [item.type for item in done.output] == ["reasoning", "message"]
    assert done.output[0].summary[0].text.startswith("Simulated reasoning")
    assert "2 + 2 = 4" in done.output_text
    assert done.usage is not None and done.usage.output_tokens_details.reasoning_tokens == 16


UNKNOWN_INPUT: Any = [
    {
        "type": "message",
        "role": "developer",
        "content": [{"type": "input_text", "text": "Answer briefly.", "cache_hint": 1}],
    },
    {"role": "user", "content": "What is 2+2?", "vendor_tag": "t"},
]


def test_unknown_fields_reach_a_responses_upstream_natively(
    simulator: Simulator, gw: RunningGateway
) -> None:
    made = client(gw).responses.create(
        model="gpt-native", input=UNKNOWN_INPUT, extra_body={"future_knob": {"x": 1}}
    )
    assert "2 + 2 = 4" in made.output_text
    sent = last_upstream_body(simulator)
    assert sent["future_knob"] == {"x": 1}
    assert sent["input"][1]["vendor_tag"] == "t"
    assert sent["input"][0]["content"][0]["cache_hint"] == 1


def test_unknown_fields_elsewhere_are_refused_or_dropped(gw: RunningGateway) -> None:
    c = client(gw)
    with pytest.raises(openai.BadRequestError) as info:
        c.responses.create(model="claude-haiku", input=UNKNOWN_INPUT)
    assert (
        "input.0.content.0.cache_hint" in info.value.message
        and "claude-haiku" in info.value.message
    )
    with pytest.raises(openai.BadRequestError) as info:  # top level: the same rule
        c.responses.create(model="gpt-4o-mini", input="hi", extra_body={"frobnicate": 1})
    assert "frobnicate" in info.value.message and "gpt-4o-mini" in info.value.message
    raw = c.responses.with_raw_response.create(
        model="claude-drop", input=UNKNOWN_INPUT, extra_body={"future_knob": 1}
    )
    assert "2 + 2 = 4" in raw.parse().output_text
    gw.flush()
    row = request_row(gw.gateway.config.ledger_location, raw.headers["x-modelmix-request-id"])
    left_out = json.loads(row["decision"])["left_out"]["claude-drop"]
    assert set(left_out) == {"future_knob", "input.1.vendor_tag", "input.0.content.0.cache_hint"}


def test_input_items_list_and_pages(gw: RunningGateway) -> None:
    c = client(gw)
    first = c.responses.create(model="gpt-4o-mini", input="What is 2+2?")
    items = c.responses.input_items.list(first.id)
    assert [(i.type, i.role) for i in items.data] == [("message", "user")]  # type: ignore[union-attr]
    assert items.data[0].content[0].text == "What is 2+2?"  # type: ignore[union-attr]
    inputs: Any = [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": "What is 3+3?"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
    ]
    second = c.responses.create(model="gemini-flash", input=inputs, previous_response_id=first.id)
    page = c.responses.input_items.list(second.id)  # this request's input only, newest first
    texts = [i.content[0].text for i in page.data]  # type: ignore[union-attr]
    assert texts == ["Hi", "What is 3+3?", "Be brief."]
    assert page.has_more is False and page.first_id == page.data[0].id
    assert len({i.id for i in page.data}) == 3
    asc = c.responses.input_items.list(second.id, order="asc", limit=2)
    assert [i.content[0].text for i in asc.data] == ["Be brief.", "What is 3+3?"]  # type: ignore[union-attr]
    assert asc.has_more is True and asc.last_id == asc.data[1].id
    rest = c.responses.input_items.list(second.id, order="asc", limit=2, after=asc.last_id)
    assert [i.content[0].text for i in rest.data] == ["Hi"] and rest.has_more is False  # type: ignore[union-attr]
    # the SDK's auto-pagination walks every page
    assert len(list(c.responses.input_items.list(second.id, limit=1))) == 3
    again = c.responses.input_items.list(second.id)
    assert [i.id for i in again.data] == [i.id for i in page.data]  # stable ids


@pytest.mark.parametrize(
    ("query", "param"),
    [("limit=0", "limit"), ("limit=101", "limit"), ("limit=x", "limit"), ("order=up", "order")],
)
def test_input_items_bad_query_is_a_400(gw: RunningGateway, query: str, param: str) -> None:
    made = client(gw).responses.create(model="gpt-4o-mini", input="hi")
    r = httpx.get(f"{gw.url}/v1/responses/{made.id}/input_items?{query}")
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    r = httpx.get(f"{gw.url}/v1/responses/{made.id}/input_items?after=msg_nope")
    assert r.status_code == 400 and r.json()["error"]["param"] == "after"


def test_input_items_of_an_unknown_or_deleted_response_is_a_404(gw: RunningGateway) -> None:
    c = client(gw)
    with pytest.raises(openai.NotFoundError):
        c.responses.input_items.list("resp_nope")
    made = c.responses.create(model="gpt-4o-mini", input="hi")
    c.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        c.responses.input_items.list(made.id)
