"""Strategies are generators: drive them by hand with outcomes, no network."""

from __future__ import annotations

from typing import Any

import pytest

from modelmix.errors import GatewayError, UpstreamError
from modelmix.portfolio import build_portfolio
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Attempt, Outcome, Router
from modelmix.types import ChatRequest, ChatResponse
from tests.helpers import make_config

MODELS = [
    {"name": "cheap", "provider": "ollama", "capabilities": {"tools": False}},
    {"name": "mid", "provider": "ollama", "capabilities": {"context_window": 1000}},
    {
        "name": "claude",
        "provider": "anthropic",
        "api_key_env": "K",
        "capabilities": {"json_schema": False, "json_object": False},
    },
    {"name": "big", "provider": "ollama", "capabilities": {"vision": True}},
]
ROUTES = [
    {"name": "chain", "models": ["cheap", "mid", "claude", "big"]},
    {
        "name": "ruled",
        "strategy": "rules",
        "models": ["cheap"],
        "rules": [
            {"when": {"metadata": {"tier": "premium"}}, "models": ["big"]},
            {"when": {"tools": True}, "models": ["mid", "big"]},
        ],
    },
]


@pytest.fixture
def router() -> Router:
    config = make_config(MODELS, ROUTES)
    return Router(config.routes, build_portfolio(config, {"K": "key"}))


def req(**kw: Any) -> ChatRequest:
    return ChatRequest(
        model=kw.pop("model", "chain"),
        messages=kw.pop("messages", [{"role": "user", "content": "hi"}]),
        **kw,
    )


def ok(model: str) -> Outcome:
    return Outcome(model, response=ChatResponse(id="r", model=model, content="fine"))


def fail(model: str) -> Outcome:
    return Outcome(model, error=UpstreamError("server", "boom", status=500))


def drive(
    router: Router, request: ChatRequest, outcomes: dict[str, Outcome]
) -> tuple[list[str], Outcome | None, dict[str, Any]]:
    strategy, _ = router.resolve(request.model)
    decision: dict[str, Any] = {}
    plan = strategy.plan(request, needs_of(request), decision)
    called = []
    attempt: Attempt = next(plan)
    while True:
        called.append(attempt.model)
        try:
            attempt = plan.send(outcomes[attempt.model])
        except StopIteration as stop:
            return called, stop.value, decision


def test_fallback_stops_at_first_success(router: Router) -> None:
    called, final, decision = drive(router, req(), {"cheap": fail("cheap"), "mid": ok("mid")})
    assert called == ["cheap", "mid"]
    assert final is not None and final.ok and final.model == "mid"
    assert decision["chosen"] == "mid"
    assert [c["model"] for c in decision["candidates"]] == ["cheap", "mid", "claude", "big"]


def test_fallback_returns_last_failure_when_all_fail(router: Router) -> None:
    outcomes = {m: fail(m) for m in ("cheap", "mid", "claude", "big")}
    called, final, _ = drive(router, req(), outcomes)
    assert called == ["cheap", "mid", "claude", "big"]
    assert final is not None and not final.ok and final.model == "big"


def test_capabilities_skip_models_with_reasons(router: Router) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    request = req(tools=tools, response_format={"type": "json_object"})
    called, _, decision = drive(router, request, {"mid": ok("mid")})
    assert called == ["mid"]
    reasons = {c["model"]: c.get("reason") for c in decision["candidates"]}
    assert reasons["cheap"] == "does not support tools"
    assert reasons["claude"] == "does not support json_object output"
    assert reasons["mid"] is None


def test_images_and_context_window(router: Router) -> None:
    image = [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]
    called, _, decision = drive(
        router, req(messages=[{"role": "user", "content": image}]), {"big": ok("big")}
    )
    assert called == ["big"]
    long_prompt = [{"role": "user", "content": "word " * 3000}]
    _, _, decision = drive(router, req(messages=long_prompt), {"cheap": ok("cheap")})
    reasons = {c["model"]: c.get("reason") for c in decision["candidates"]}
    assert "context window of 1000" in reasons["mid"]
    assert reasons["cheap"] is None


def test_unhonourable_parameter_skips_model_explicitly(router: Router) -> None:
    # Anthropic has no `n`: the model is skipped with the reason, the param is not dropped.
    request = req(model="claude", params={"n": 2})
    with pytest.raises(GatewayError) as info:
        drive(router, request, {})
    assert info.value.kind == "invalid_request"
    assert "claude: cannot honour n" in info.value.message


def test_rules_pick_chain_by_metadata_and_tools(router: Router) -> None:
    called, _, decision = drive(
        router, req(model="ruled", metadata={"tier": "premium"}), {"big": ok("big")}
    )
    assert called == ["big"] and decision["rule"] == 0
    tools = [{"type": "function", "function": {"name": "f"}}]
    called, _, decision = drive(router, req(model="ruled", tools=tools), {"mid": ok("mid")})
    assert called == ["mid"] and decision["rule"] == 1
    called, _, decision = drive(router, req(model="ruled"), {"cheap": ok("cheap")})
    assert called == ["cheap"] and decision["rule"] is None


def test_unknown_model_is_a_404_listing_known_names(router: Router) -> None:
    with pytest.raises(GatewayError) as info:
        router.resolve("nope")
    assert info.value.status == 404
    assert "chain" in info.value.message and "cheap" in info.value.message


def test_missing_key_makes_model_unavailable() -> None:
    config = make_config(MODELS, ROUTES)
    router = Router(config.routes, build_portfolio(config, {}))
    _, _, decision = drive(router, req(model="chain"), {"cheap": ok("cheap")})
    reasons = {c["model"]: c.get("reason") for c in decision["candidates"]}
    assert reasons["claude"] == "unavailable: environment variable K is not set"


CONTENT_MODELS = [
    {"name": "claude", "provider": "anthropic", "api_key_env": "K"},
    {"name": "gemini", "provider": "gemini", "api_key_env": "K"},
    {"name": "local", "provider": "ollama"},
]
AUDIO = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
URL_IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}


@pytest.mark.parametrize(
    ("messages", "claude_reason", "gemini_reason"),
    [
        (
            [{"role": "user", "content": [AUDIO]}],
            "cannot honour messages: Anthropic cannot take 'input_audio' parts",
            "cannot honour messages: Gemini cannot take 'input_audio' parts",
        ),
        (
            [{"role": "user", "content": [URL_IMAGE]}],
            None,
            "cannot honour messages: Gemini needs images inline (data: URLs)",
        ),
        (
            [{"role": "system", "content": "x"}],
            "cannot honour messages: Anthropic needs a user or assistant message besides the "
            "system prompt",
            "cannot honour messages: Gemini needs a user or assistant message besides the "
            "system prompt",
        ),
    ],
    ids=["audio", "url-image", "system-only"],
)
def test_message_content_is_screened_before_a_model_is_called(
    messages: list[dict[str, Any]], claude_reason: str | None, gemini_reason: str
) -> None:
    caps = {"vision": True}
    models = [{**m, "capabilities": caps} for m in CONTENT_MODELS]
    routes = [
        {"name": "chain", "models": ["claude", "gemini", "local"]},
        {"name": "hosted", "models": ["claude", "gemini"]},
    ]
    config = make_config(models, routes)
    router = Router(config.routes, build_portfolio(config, {"K": "key"}))
    first = "claude" if claude_reason is None else "local"
    called, _, decision = drive(router, req(messages=messages), {first: ok(first)})
    assert called == [first]  # no attempt is wasted on a model that cannot take the content
    reasons = {c["model"]: c.get("reason") for c in decision["candidates"]}
    assert reasons == {"claude": claude_reason, "gemini": gemini_reason, "local": None}
    if claude_reason is not None:
        with pytest.raises(GatewayError) as info:
            drive(router, req(model="hosted", messages=messages), {})
        assert info.value.status == 400 and info.value.code == "no_capable_model"
        assert f"claude: {claude_reason}" in info.value.message
        assert f"gemini: {gemini_reason}" in info.value.message


def test_no_callable_model_is_a_503_but_a_request_no_model_takes_is_a_400() -> None:
    config = make_config(MODELS, [{"name": "only-claude", "models": ["claude"]}])
    router = Router(config.routes, build_portfolio(config, {}))  # K is not set
    with pytest.raises(GatewayError) as info:
        drive(router, req(model="only-claude"), {})
    assert info.value.status == 503 and info.value.code == "model_unavailable"
    assert "claude: unavailable: environment variable K is not set" in info.value.message
    # claude could not take this one even with its key: the client's to fix, so a 400
    with pytest.raises(GatewayError) as info:
        drive(router, req(model="only-claude", response_format={"type": "json_object"}), {})
    assert info.value.status == 400 and info.value.code == "no_capable_model"
    assert "claude: does not support json_object output" in info.value.message


def test_budget_pressure_drops_the_dearest_models_of_a_chain() -> None:
    priced = [
        {"name": n, "provider": "ollama", "price": {"input": p, "output": p}}
        for n, p in (("gold", 10), ("silver", 2), ("bronze", 0.5))
    ]
    config = make_config(priced, [{"name": "best-first", "models": ["gold", "silver", "bronze"]}])
    router = Router(config.routes, build_portfolio(config, {}))
    request = req(model="best-first")
    strategy, _ = router.resolve("best-first")
    for pressure, first, dropped in ((0.0, "gold", None), (0.4, "silver", ["gold"]),
                                     (1.0, "bronze", ["gold", "silver"])):  # fmt: skip
        decision: dict[str, Any] = {}
        plan = strategy.plan(request, needs_of(request, pressure), decision)
        assert next(plan).model == first
        assert decision.get("budget_degraded", {}).get("dropped") == dropped
    # the cheapest model that is left still falls back on failure
    decision = {}
    plan = strategy.plan(request, needs_of(request, 0.4), decision)
    assert next(plan).model == "silver" and plan.send(fail("silver")).model == "bronze"
