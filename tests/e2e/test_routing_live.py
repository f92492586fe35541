"""The shipped learned router and a staged cascade serving live requests through a running
gateway; their decisions land in the ledger."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from modelmix.config import parse_config
from modelmix.simulated import Simulator
from tests.e2e.conftest import RunningGateway
from tests.e2e.ledger_rows import attempt_rows, request_row

# Model names the shipped router was trained on, served here by the simulator.
MODELS = [
    "gemini-1.5-flash",
    "gpt-4o-mini-2024-07-18",
    "deepseek-v2.5",
    "claude-3-5-sonnet-20241022",
    "gpt-4o-2024-08-06",
]
ANSWER_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {
            "type": "object",
            "properties": {"reasoning": {"type": "string"}, "answer": {"type": "string"}},
            "required": ["reasoning", "answer"],
        },
    },
}


@pytest.fixture(scope="module")
def routed(
    simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("routed")
    models: list[dict[str, Any]] = [
        {"name": m, "provider": "openai", "base_url": simulator.base_url("openai")} for m in MODELS
    ]
    config = parse_config(
        {
            "models": models,
            "routes": [
                {
                    "name": "smart",
                    "strategy": "learned",
                    "models": MODELS,
                    "learned": {"quality_target": 0.95},
                },
                {
                    "name": "checked",
                    "strategy": "cascade",
                    # a price of quality as given: a quality_target would send this bare
                    # prompt, unlike the shipped artifact's templated training prompts, to the
                    # single models that keep the target (out_of_distribution)
                    "cascade": {"staged": True, "artifact": "default", "lam": 0.05},
                },
            ],
            "ledger": {"path": str(tmp / "ledger.db")},
        }
    )
    running = RunningGateway(config, env={})
    yield running
    running.stop()


def ask(gw: RunningGateway, route: str, text: str) -> tuple[str, dict[str, Any]]:
    raw = openai.OpenAI(
        base_url=gw.url + "/v1", api_key="x", max_retries=0
    ).chat.completions.with_raw_response.create(
        model=route,
        messages=[{"role": "user", "content": text}],
        response_format=ANSWER_SCHEMA,  # type: ignore[arg-type]
    )
    request_id = raw.headers["x-modelmix-request-id"]
    gw.flush()
    return request_id, request_row(gw.gateway.config.ledger_path, request_id)


def test_learned_route_explains_its_choice(routed: RunningGateway) -> None:
    _request_id, row = ask(routed, "smart", "What is 12 + 30? Answer in JSON.")
    decision = json.loads(row["decision"])
    assert decision["strategy"] == "learned"
    assert decision["chosen"] == row["final_model"]
    assert {c["model"] for c in decision["candidates"]} == set(MODELS)
    for cand in decision["candidates"]:
        assert 0.0 <= cand["p_good"] <= 1.0 and cand["cost"] > 0
    assert decision["knob"]["quality_target"] == 0.95
    assert decision["prompt_tokens"] > 0


def test_cascade_calls_cheap_stage_first_and_records_each_step(routed: RunningGateway) -> None:
    request_id, row = ask(
        routed,
        "checked",
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
        "clips in May. How many clips did Natalia sell altogether in April and May?",
    )
    decision = json.loads(row["decision"])
    assert decision["strategy"] == "cascade"
    attempts = attempt_rows(routed.gateway.config.ledger_path, request_id)
    called = [a["model"] for a in attempts]
    # the first stage is the cheap pair, called before anything dearer
    assert set(called[:2]) == {"gemini-1.5-flash", "gpt-4o-mini-2024-07-18"}
    assert all(a["status"] == "ok" and a["cost_usd"] is not None for a in attempts)
    assert row["final_model"] in called
    assert decision["steps"]  # each stage's answers and their estimated correctness
    assert "escalated" in decision
