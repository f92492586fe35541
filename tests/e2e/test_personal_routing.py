"""Personalised routing end to end: a real gateway (uvicorn), the real openai SDK, the ledger
on SQLite and PostgreSQL. One team's feedback (every answer accepted) moves its learned route
to the cheaper model; another team without feedback routes exactly as before; ``modelmix
policy personal`` disables, re-enables and resets the offset, and ``modelmix report --by team``
shows it. Alice and Carol share team ``lenient`` (only Alice rates answers), Bob is in team
``strict``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import openai
import orjson
import pytest
from click.testing import CliRunner

from modelmix.cli import main
from modelmix.config import load_config
from modelmix.ledger.keys import KeyStore
from tests.conftest import BACKENDS, ledger_location, ledger_settings
from tests.e2e.conftest import RunningGateway
from tests.e2e.test_quality_loop import rows, write_config

PROMPT = "What is 17 times 23?"
ADMIN = "admin-secret-key"


def sim(name: str, upstream: str, price_in: str, price_out: str) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "openai",
        "model": upstream,
        "base_url": "builtin:simulated",
        "price": {"input": price_in, "output": price_out},
    }


@pytest.fixture(scope="module", params=BACKENDS)
def personal_gw(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("personal")
    db = ledger_location(request, tmp)
    keystore = KeyStore(db)
    keys = {
        "alice": keystore.create("alice", team="lenient")[1],
        "carol": keystore.create("carol", team="lenient")[1],
        "bob": keystore.create("bob", team="strict")[1],
    }
    keystore.close()
    data = {
        "server": {"admin_key_env": "MM_ADMIN"},
        **ledger_settings(db, tmp, flush_interval=0.05),
        "models": [sim("small", "sim-small", "0.1", "0.2"), sim("large", "sim-large", "1", "2")],
        "routes": [
            {
                "name": "smart",
                "strategy": "learned",
                "models": ["small", "large"],
                "learned": {"quality_target": 0.95, "profiles": {"small": 0.8, "large": 0.9}},
            }
        ],
        "quality": {
            "personal": {"enabled": True, "prior_strength": 5, "cap": 1.0, "refresh_seconds": 0}
        },
    }
    path = write_config(tmp, data)
    running = RunningGateway(load_config(path), env={"MM_ADMIN": ADMIN})
    yield running, keys, path
    running.stop()


def ask(gw: RunningGateway, key: str) -> tuple[str, dict[str, Any]]:
    """(request id, routing decision) of one request to the learned route."""
    client = openai.OpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": PROMPT}]
    )
    raw.parse()
    request_id = raw.headers["x-modelmix-request-id"]
    gw.flush()
    assert gw.gateway.ledger is not None
    location = gw.gateway.config.ledger_location
    found = rows(location, "SELECT decision FROM requests WHERE id = ?", request_id)
    return request_id, orjson.loads(found[0]["decision"])


def refresh(gw: RunningGateway) -> dict[str, float]:
    assert gw.gateway.personal is not None
    return gw.gateway.personal.refresh()


def policy(path: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["policy", "personal", *args, "--config", str(path)])
    assert result.exit_code == 0, result.output
    return result.output


def test_one_teams_feedback_moves_its_routing_and_not_anothers(
    personal_gw: tuple[RunningGateway, dict[str, str], Path],
) -> None:
    gw, keys, path = personal_gw
    # before any feedback both teams get the global router's choice
    ids = []
    for _ in range(20):
        request_id, decision = ask(gw, keys["alice"])
        assert decision["chosen"] == "large" and "personal" not in decision
        ids.append(request_id)
    _, decision = ask(gw, keys["bob"])
    assert decision["chosen"] == "large"
    # team lenient accepts every answer: the router under-predicted what it accepts
    for request_id in ids:
        response = httpx.post(
            gw.url + "/v1/feedback",
            json={"request_id": request_id, "score": 1.0},
            headers={"authorization": f"Bearer {keys['alice']}"},
        )
        assert response.status_code == 201, response.text
    offsets = refresh(gw)
    assert 0.5 < offsets["team:lenient"] <= 1.0
    assert [s for s in offsets if not s.startswith("key:")] == ["team:lenient"]
    _, decision = ask(gw, keys["alice"])  # her key's own offset (the most specific subject)
    assert decision["chosen"] == "small" and decision["personal"]["subject"].startswith("key:")
    _, decision = ask(gw, keys["carol"])  # no feedback of her own: her team's
    assert decision["chosen"] == "small"
    assert decision["personal"] == {
        "subject": "team:lenient",
        "offset": round(offsets["team:lenient"], 4),
    }
    _, decision = ask(gw, keys["bob"])  # the other team: exactly as before
    assert decision["chosen"] == "large" and "personal" not in decision

    report = CliRunner().invoke(main, ["report", "--by", "team", "--config", str(path)])
    assert report.exit_code == 0, report.output
    assert "personalised routing by team" in report.output and "team:lenient" in report.output
    assert "team:lenient" in policy(path, "show")
    auth = {"authorization": f"Bearer {ADMIN}"}
    summary = httpx.get(gw.url + "/ui/api/summary", headers=auth).json()
    assert [r["subject"] for r in summary["personal"]] == ["team:lenient"]
    page = httpx.get(gw.url + "/ui", headers=auth).text
    assert "Personalised routing by team" in page and "lenient" in page

    # reversible: disabled, the team routes as the global router; enabled, personal again
    assert "disabled" in policy(path, "disable", "team:lenient")
    assert "team:lenient" not in refresh(gw)
    assert ask(gw, keys["carol"])[1]["chosen"] == "large"
    policy(path, "enable", "team:lenient")
    assert "team:lenient" in refresh(gw)
    assert ask(gw, keys["carol"])[1]["chosen"] == "small"
    policy(path, "disable")  # everyone
    assert refresh(gw) == {}
    assert ask(gw, keys["alice"])[1]["chosen"] == "large"
    policy(path, "enable")
    # reset: the feedback given so far no longer counts
    policy(path, "reset", "team:lenient")
    assert "team:lenient" not in refresh(gw)
    assert ask(gw, keys["carol"])[1]["chosen"] == "large"


def test_bad_subjects_are_refused(
    personal_gw: tuple[RunningGateway, dict[str, str], Path],
) -> None:
    _, _, path = personal_gw
    for args in (["reset", "nobody"], ["reset", "*"], ["disable", "group:x"]):
        result = CliRunner().invoke(main, ["policy", "personal", *args, "--config", str(path)])
        assert result.exit_code == 2, result.output
