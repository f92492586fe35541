"""Real agent frameworks on modelmix's Responses API: an OpenAI Agents SDK agent with a function
tool (run and run_streamed), LangChain's ``ChatOpenAI(use_responses_api=True)`` and
pydantic-ai's ``OpenAIResponsesModel``, each in its own process, installed with pip as a user
would (tests/e2e/agent_clients.py), against a running gateway whose simulated upstreams speak
every wire format."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelmix.simulated import Simulator
from tests.e2e.agent_clients import client_python, run_script
from tests.e2e.conftest import RunningGateway
from tests.e2e.test_responses_api import _config

UPSTREAMS = ["gpt-4o-mini", "claude-haiku", "gemini-flash", "gpt-native"]


@pytest.fixture(scope="session")
def python() -> Path:
    return client_python()


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("agents")
    running = RunningGateway(_config(simulator, tmp, tmp / "ledger.db"), env={})
    yield running
    running.stop()


def run(python: Path, gw: RunningGateway, script: str, *args: str) -> dict[str, Any]:
    done = run_script(python, script, gw.url + "/v1", *args)
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ledger_rows(gw: RunningGateway, response_ids: list[str]) -> list[tuple[Any, ...]]:
    """(api, status, final_model, prompt_tokens) of each response's request, in order."""
    gw.flush()
    with sqlite3.connect(gw.gateway.config.ledger_path) as conn:
        return [
            conn.execute(
                "SELECT api, status, final_model, prompt_tokens FROM requests WHERE id = ?",
                (r.removeprefix("resp_"),),
            ).fetchone()
            for r in response_ids
        ]


@pytest.mark.parametrize("model", UPSTREAMS)
def test_openai_agents_sdk_tool_using_agent(python: Path, gw: RunningGateway, model: str) -> None:
    typed = ["typed"] if model != "claude-haiku" else []  # (configured without json_schema)
    out = run(python, gw, "openai_agents_tool.py", model, *typed)
    assert out["items"] == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    assert "get_weather returned:" in out["final"] and "sunny in Paris, 21 C" in out["final"]
    assert len(out["responses"]) == 2  # the tool call, then the answer
    rows = ledger_rows(gw, out["responses"])
    assert [r[:3] for r in rows] == [("responses", "ok", model)] * 2
    # the second turn continued the stored conversation: the whole first turn was sent again
    assert "get_weather returned:" in out["follow_up"]
    follow_up = ledger_rows(gw, out["follow_up_responses"])
    assert [r[:3] for r in follow_up] == [("responses", "ok", model)] * 2
    assert follow_up[0][3] > rows[1][3]
    if typed:
        assert isinstance(out["city"]["name"], str) and isinstance(out["city"]["population"], int)


def test_openai_agents_sdk_streamed_run(python: Path, gw: RunningGateway) -> None:
    out = run(python, gw, "openai_agents_tool.py", "gpt-native", "stream")
    assert "sunny in Paris, 21 C" in out["final"]
    assert {"raw_response_event", "run_item_stream_event"} <= set(out["events"])
    rows = ledger_rows(gw, out["responses"] + out["follow_up_responses"])
    assert [r[:3] for r in rows] == [("responses", "ok", "gpt-native")] * 4


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku", "gpt-native"])
def test_langchain_chat_openai_responses_api(python: Path, gw: RunningGateway, model: str) -> None:
    out = run(python, gw, "langchain_responses.py", model)
    assert out["call"] == "get_weather" and isinstance(out["args"]["city"], str)
    assert "get_weather returned:" in out["final"] and "21 C" in out["final"]
    assert "6 * 7 = 42" in out["streamed"]


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gemini-flash", "gpt-native"])
def test_pydantic_ai_openai_responses_model(python: Path, gw: RunningGateway, model: str) -> None:
    out = run(python, gw, "pydantic_ai_responses.py", model)
    assert out["tools"] == ["get_weather"]
    assert "get_weather returned:" in out["final"] and "sunny in Paris, 21 C" in out["final"]
    assert isinstance(out["city"]["name"], str) and isinstance(out["city"]["population"], int)
