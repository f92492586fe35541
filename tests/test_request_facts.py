"""Derived request facts: computed lazily, at most once per request, shared by admission
(budgets), ``needs_of`` and the routers."""

from __future__ import annotations

import dataclasses

import pytest

from modelmix import request_facts
from modelmix.budgets.reservation import count_prompt_tokens
from modelmix.routing.learned import strategy as learned_strategy
from modelmix.routing.learned.artifact import load_artifact
from modelmix.routing.learned.strategy import LearnedStrategy
from modelmix.routing.needs import needs_of
from modelmix.tokens import count_tokens
from modelmix.types import ChatRequest


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the facts hand to the tokenizer."""
    seen: list[str] = []

    def counting(text: str) -> int:
        seen.append(text)
        return count_tokens(text)

    monkeypatch.setattr(request_facts, "count_tokens", counting)
    monkeypatch.setattr(learned_strategy, "count_tokens", counting)
    return seen


def _route(request: ChatRequest) -> int:
    art = load_artifact("default")
    strategy = LearnedStrategy("r", art.models, art, quality_target=0.95)
    decision: dict[str, object] = {}
    next(strategy.plan(request, needs_of(request), decision))
    tokens = decision["prompt_tokens"]
    assert isinstance(tokens, int)
    return tokens


def test_one_tokenization_serves_admission_needs_and_the_router(calls: list[str]) -> None:
    text = "Prove that the square root of two is irrational."
    request = ChatRequest(model="r", messages=[{"role": "user", "content": text}])
    assert count_prompt_tokens(request) == count_tokens(text) + 4
    needs = needs_of(request)
    assert _route(request) == count_tokens(text)
    assert count_prompt_tokens(request) == count_tokens(text) + 4  # asked again: cached
    assert calls == [text]  # once, for everyone
    assert needs.prompt_tokens == len(text) // 3 + 4


def test_nothing_is_computed_unless_asked(calls: list[str]) -> None:
    request = ChatRequest(model="m", messages=[{"role": "user", "content": "hello"}])
    needs = needs_of(request)  # character-based estimate: no tokenizer
    assert not needs.images and needs.prompt_tokens == len("hello") // 3 + 4
    assert calls == []
    assert request.facts._text is None  # the joined prompt text was not built either


def test_tools_count_with_the_text_and_images_get_an_allowance(calls: list[str]) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    content = [
        {"type": "text", "text": "describe"},
        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
    ]
    messages = [
        {"role": "user", "content": content},
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
    ]
    request = ChatRequest(model="m", messages=messages, tools=tools)
    facts = request.facts
    assert facts.images == 1 and facts.text == "describe"
    combined = 'describe\nf {}\n[{"type":"function","function":{"name":"f","parameters":{}}}]'
    assert facts.prompt_tokens == count_tokens(combined) + 2 * 4 + 1000
    assert facts.text_tokens == count_tokens("describe")
    assert calls == [combined, "describe"]
    assert needs_of(request).images and needs_of(request).tools


def test_a_replaced_request_gets_fresh_facts() -> None:
    request = ChatRequest(model="m", messages=[{"role": "user", "content": "one"}])
    assert request.facts.text == "one"
    other = dataclasses.replace(request, messages=[{"role": "user", "content": "two words"}])
    assert other.facts.text == "two words" and request.facts.text == "one"
    assert request.facts is request.facts
