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
    running = RunningGateway(_config(simulator, tmp_path_factory.mktemp("agents")), env={})
    yield running
    running.stop()


def run(python: Path, gw: RunningGateway, script: str, *args: str) -> dict[str, Any]:
    done = run_script(python, script, gw.url + "/v1", *args)
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def ledger_rows(gw: RunningGateway, response_ids: list[str]) -> list[tuple[str, str, str]]:
    gw.flush()
    ids = [r.removeprefix("resp_") for r in response_ids]
    with sqlite3.connect(gw.gateway.config.ledger_path) as conn:
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT api, status, final_model FROM requests WHERE id IN ({marks})", ids
        ).fetchall()
    return [tuple(r) for r in rows]


@pytest.mark.parametrize("model", UPSTREAMS)
def test_openai_agents_sdk_tool_using_agent(python: Path, gw: RunningGateway, model: str) -> None:
    out = run(python, gw, "openai_agents_tool.py", model)
    assert out["items"] == ["tool_call_item", "tool_call_output_item", "message_output_item"]
    assert "get_weather returned:" in out["final"] and "sunny in Paris, 21 C" in out["final"]
    assert len(out["responses"]) == 2  # the tool call, then the answer
    assert ledger_rows(gw, out["responses"]) == [("responses", "ok", model)] * 2


def test_openai_agents_sdk_streamed_run(python: Path, gw: RunningGateway) -> None:
    out = run(python, gw, "openai_agents_tool.py", "gpt-native", "stream")
    assert "sunny in Paris, 21 C" in out["final"]
    assert {"raw_response_event", "run_item_stream_event"} <= set(out["events"])
    assert ledger_rows(gw, out["responses"]) == [("responses", "ok", "gpt-native")] * 2


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
