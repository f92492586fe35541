"""Claude Code (``claude -p``, from the npm registry) against a real gateway: a streamed answer,
a tool round trip with extended thinking kept intact, ``/context``'s count_tokens calls, and
the same client at a model of another wire format. Asserts on the ledger rows.

Claude Code is installed the way a user installs it (``npm install -g
@anthropic-ai/claude-code``) when ``claude`` is not on the PATH; the test fails if it cannot be.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelmix.config import parse_config
from modelmix.simulated import Simulator
from tests.e2e.conftest import RunningGateway

PACKAGE = "@anthropic-ai/claude-code"


@pytest.fixture(scope="module")
def claude() -> str:
    found = shutil.which("claude")
    if found is None:
        npm = shutil.which("npm")
        assert npm is not None, f"npm is needed to install {PACKAGE} (apt-get install npm)"
        subprocess.run([npm, "install", "-g", PACKAGE], check=True, timeout=600)
        found = shutil.which("claude")
    assert found is not None, f"`npm install -g {PACKAGE}` left no `claude` on the PATH"
    return found


@pytest.fixture(scope="module")
def gw(simulator: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("claude-code")

    def model(name: str, kind: str, **kw: Any) -> dict[str, Any]:
        upstream = kw.pop("model", name)
        base = {"name": name, "provider": kind, "model": upstream}
        return {**base, "base_url": simulator.base_url(kind), **kw}

    price = {"input": "1", "output": "5"}
    config = parse_config(
        {
            "models": [
                model("claude-sim", "anthropic", price=price),
                model("gemini-sim", "gemini", price=price),
            ],
            "ledger": {"path": str(tmp / "ledger.db"), "flush_interval": 0.05},
        }
    )
    running = RunningGateway(config, env={})
    yield running
    running.stop()


def _run(claude: str, gw: RunningGateway, cwd: Path, *args: str) -> str:
    home = cwd / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": gw.url,
        "ANTHROPIC_API_KEY": "sk-modelmix-test",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    done = subprocess.run(
        [claude, "-p", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"claude failed: {done.stdout}\n{done.stderr}"
    gw.flush()
    return done.stdout


def _rows(gw: RunningGateway, since: float) -> list[dict[str, Any]]:
    db = gw.gateway.config.ledger.path
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(
            "SELECT * FROM requests WHERE started_at >= ? ORDER BY started_at", (since,)
        ).fetchall()
    out = [dict(r) for r in rows]
    for row in out:
        row["decision"] = json.loads(row["decision"])
    return out


def _answers(gw: RunningGateway, since: float) -> list[dict[str, Any]]:
    """The Messages calls since ``since`` (not count_tokens), each of them answered."""
    answers = [r for r in _rows(gw, since) if "count_tokens" not in r["decision"]]
    assert answers and all(r["status"] == "ok" for r in answers), answers
    return answers


def _now(gw: RunningGateway) -> float:
    gw.flush()
    return time.time()


def test_streamed_answer(
    claude: str, gw: RunningGateway, simulator: Simulator, tmp_path: Path
) -> None:
    since = _now(gw)
    out = _run(claude, gw, tmp_path, "What is 2+2?", "--model", "claude-sim")
    assert "2 + 2 = 4" in out
    answers = _answers(gw, since)
    assert all(r["api"] == "anthropic" and r["stream"] == 1 for r in answers)
    assert {r["final_model"] for r in answers} == {"claude-sim"}
    assert all(r["prompt_tokens"] > 0 and r["completion_tokens"] > 0 for r in answers)
    # the upstream got Claude Code's own request: its betas, thinking and context management
    sent = [
        r
        for r in simulator.requests
        if r.path.endswith("/messages") and "context_management" in r.body
    ]
    assert sent, "no request carried context_management to the Anthropic upstream"
    assert "context-management" in sent[-1].headers.get("anthropic-beta", "")
    assert sent[-1].body["thinking"]["type"] in ("adaptive", "enabled")


def test_tool_round_trip_keeps_thinking(
    claude: str, gw: RunningGateway, simulator: Simulator, tmp_path: Path
) -> None:
    marker = f"modelmix-{uuid.uuid4().hex[:8]}"
    call = json.dumps({"command": f"echo {marker}", "description": "Print a marker"})
    since = _now(gw)
    out = _run(
        claude,
        gw,
        tmp_path,
        f"Run this for me: call tool Bash with {call}",
        "--model",
        "claude-sim",
        "--allowedTools",
        "Bash(echo:*)",
    )
    assert f"The tool Bash returned: {marker}" in out
    answers = _answers(gw, since)
    assert len(answers) >= 2, answers
    # Claude Code's cache_control breakpoints reached the upstream byte-stable: the turn after
    # the tool read the shared prefix from the (simulated) prompt cache, and it is priced so
    assert answers[-1]["cached_tokens"] > 0, answers[-1]
    # the turn that carried the tool result back: Claude Code ran Bash, and sent the thinking
    # block (with the signature the simulated upstream checks) ahead of its tool_use
    back = [
        r.body
        for r in simulator.requests
        if r.path.endswith("/messages")
        and marker in json.dumps(r.body.get("messages", []))
        and any(
            isinstance(m["content"], list)
            and any(b.get("type") == "tool_result" for b in m["content"])
            for m in r.body["messages"]
        )
    ]
    assert back, "the tool result never reached the upstream"
    assistant = [m for m in back[-1]["messages"] if m["role"] == "assistant"][-1]
    assert assistant["content"][0]["type"] == "thinking"
    assert assistant["content"][0]["signature"]
    assert any(b["type"] == "tool_use" and b["name"] == "Bash" for b in assistant["content"])


def test_context_counts_tokens(claude: str, gw: RunningGateway, tmp_path: Path) -> None:
    (tmp_path / "CLAUDE.md").write_text("# Notes\nAnswer briefly.\n")
    since = _now(gw)
    out = _run(claude, gw, tmp_path, "/context", "--model", "claude-sim")
    assert "CLAUDE.md" in out
    counts = [r for r in _rows(gw, since) if r["decision"].get("endpoint") == "count_tokens"]
    assert counts, "Claude Code made no count_tokens call"
    assert all(r["status"] == "ok" and r["cost_usd"] == "0" for r in counts), counts
    assert all(r["decision"]["count_tokens"]["exact"] for r in counts)
    assert all(r["decision"]["count_tokens"]["model"] == "claude-sim" for r in counts)


def test_another_wire_format_says_what_it_left_out(
    claude: str, gw: RunningGateway, tmp_path: Path
) -> None:
    since = _now(gw)
    out = _run(claude, gw, tmp_path, "What is 5+6?", "--model", "gemini-sim")
    assert "5 + 6 = 11" in out
    answers = _answers(gw, since)
    main = [
        r
        for r in answers
        if "context_management" in r["decision"].get("left_out", {}).get("gemini-sim", {})
    ]
    assert main, [r["decision"] for r in answers]
    assert "thinking" in main[-1]["decision"]["left_out"]["gemini-sim"]
