"""Unit tests of the simulator's pure parts: the behaviour grammar, answers, schema values."""

from __future__ import annotations

from typing import Any

import pytest

from modelmix.simulated.answers import Ask, Tool, compose, estimate_tokens, solve_arithmetic
from modelmix.simulated.behaviour import Behaviour, parse_behaviour
from modelmix.simulated.schema_values import synthesise
from modelmix.simulated.wire import split_arguments, split_text

# --- behaviour grammar ------------------------------------------------------------------------


def test_plain_names_have_the_default_behaviour() -> None:
    for name in ("sim-x", "gpt-4o", "claude-3-5-sonnet", "gemini-1.5-pro", "llama-3-70b"):
        assert parse_behaviour(name) == Behaviour(), name
    # sizes only set the arithmetic skill (see tests/simulated/test_sim_quality.py)
    assert parse_behaviour("sim-small") == Behaviour(skill=2)


def test_tokens_combine_and_ignore_case() -> None:
    b = parse_behaviour("sim-Slow50-TTFT200-flaky2-cached100-cut")
    assert (b.slow_ms, b.ttft_ms, b.flaky, b.cached, b.cut) == (50, 200, 2, 100, True)
    assert b.error_status is None and not b.reset and not b.timeout


@pytest.mark.parametrize("status", [429, 500, 503, 529])
def test_status_tokens(status: int) -> None:
    assert parse_behaviour(f"sim-{status}").error_status == status


def test_flag_tokens() -> None:
    assert parse_behaviour("sim-timeout").timeout
    assert parse_behaviour("sim-reset").reset
    assert parse_behaviour("sim_malformed").malformed
    assert parse_behaviour("sim-refuse").refuse
    assert parse_behaviour("sim-404").error_status is None  # not a supported status token


# --- answers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("What is 2+2?", "2 + 2 = 4"),
        ("compute (3 + 4) * 5 please", "(3 + 4) * 5 = 35"),
        ("10 / 4", "10 / 4 = 2.5"),
        ("what's 7 x 6", "7 x 6 = 42"),
        ("Answer in 2-3 sentences.", None),
        ("Meet on 2024-01-15", None),
        ("Tell me about cats", None),
        ("1/0", None),
    ],
)
def test_arithmetic(text: str, expected: str | None) -> None:
    assert solve_arithmetic(text) == expected


def test_text_answers_are_labelled_and_deterministic() -> None:
    ask = Ask(model="sim-small", last_user_text="Tell me about the sea.", prompt_chars=22)
    first = compose(ask, Behaviour())
    assert first.text is not None and first.text.startswith("[simulated sim-small] ")
    assert "Tell me about the sea." in first.text
    assert compose(ask, Behaviour()) == first
    assert first.prompt_tokens == estimate_tokens(22) == 6
    assert first.completion_tokens == estimate_tokens(len(first.text))


def test_max_tokens_truncates_with_length() -> None:
    ask = Ask(model="m", last_user_text="Tell me a long story about dragons", max_tokens=3)
    answer = compose(ask, Behaviour())
    assert answer.finish == "length"
    assert answer.text == "[simulated m] You said"[:12]
    assert answer.completion_tokens == 3


def test_stop_sequence_cuts_at_the_earliest() -> None:
    ask = Ask(model="m", last_user_text="Tell me about the sea.", stop=["sea", "about"])
    answer = compose(ask, Behaviour())
    assert answer.finish == "stop_sequence" and answer.stop_sequence == "about"
    assert answer.text == '[simulated m] You said: "Tell me '


def test_cached_tokens_add_to_the_prompt() -> None:
    answer = compose(Ask(model="m", prompt_chars=40), parse_behaviour("m-cached100"))
    assert (answer.prompt_tokens, answer.cached_tokens) == (110, 100)


def test_refusal() -> None:
    answer = compose(Ask(model="m", last_user_text="hi"), parse_behaviour("m-refuse"))
    assert answer.text is not None and "can't help" in answer.text


def test_tool_call_goes_to_the_forced_tool_else_the_first() -> None:
    tools = [
        Tool("first", {"type": "object", "properties": {"a": {"type": "integer"}}}),
        Tool("second", {"type": "object", "properties": {"city": {"type": "string"}}}),
    ]
    assert compose(Ask(model="m", tools=tools), Behaviour()).tool_name == "first"
    forced = compose(Ask(model="m", tools=tools, forced_tool="second"), Behaviour())
    assert forced.finish == "tool_call"
    assert (forced.tool_name, forced.tool_input) == ("second", {"city": "Paris"})
    assert forced.tool_arguments == '{"city":"Paris"}'
    assert compose(Ask(model="m", tools=tools, no_tools=True), Behaviour()).tool_name is None


def test_after_a_tool_result_the_answer_is_text_mentioning_it() -> None:
    tools = [Tool("get_weather", {"type": "object"})]
    ask = Ask(model="m", tools=tools, tool_result=("get_weather", "sunny, 21C"))
    answer = compose(ask, Behaviour())
    assert answer.tool_name is None and answer.text is not None
    assert "get_weather" in answer.text and "sunny, 21C" in answer.text


# --- schema values ----------------------------------------------------------------------------

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 20},
        "age": {"type": "integer", "minimum": 18, "maximum": 30},
        "score": {"type": "number", "exclusiveMaximum": 1},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "kind": {"enum": ["a", "b"]},
        "email": {"type": "string", "format": "email"},
        "when": {"type": ["string", "null"], "format": "date-time"},
        "maybe": {"anyOf": [{"type": "null"}, {"type": "boolean"}]},
        "address": {"$ref": "#/$defs/address"},
    },
    "required": ["name", "age", "address"],
    "additionalProperties": False,
    "$defs": {
        "address": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "zip": {"type": "string"}},
            "required": ["city"],
        }
    },
}


def test_schema_values_validate() -> None:
    import jsonschema

    value = synthesise(SCHEMA)
    jsonschema.validate(value, SCHEMA)
    assert value["age"] == 18 and value["score"] < 1 and len(value["tags"]) == 2
    assert value["address"] == {"city": "Paris", "zip": "simulated zip"}


def test_schema_values_can_fill_only_required_properties() -> None:
    value = synthesise(SCHEMA, all_properties=False)
    assert set(value) == {"name", "age", "address"}
    assert set(value["address"]) == {"city"}
    assert len(value["name"]) >= 20


def test_gemini_openapi_schemas_with_upper_case_types() -> None:
    schema = {
        "type": "OBJECT",
        "properties": {"n": {"type": "INTEGER"}, "ok": {"type": "BOOLEAN"}},
        "required": ["n", "ok"],
    }
    assert synthesise(schema) == {"n": 1, "ok": True}


def test_stream_splitting_round_trips() -> None:
    text = "[simulated m] You said: a longwordthatgoesonandon here."
    pieces = split_text(text)
    assert "".join(pieces) == text and len(pieces) > 5
    arguments = '{"city":"Paris","days":3}'
    fragments = split_arguments(arguments)
    assert "".join(fragments) == arguments and len(fragments) == 3
