"""Adaptive routing through a running gateway and a real simulated upstream: a deployment
with a capacity spills the overflow to the next model with the reason in the ledger (and no
request fails); a route with ``max_ttft_ms`` moves away from a model made slow and comes back
after it recovers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest

from modelmix.config import parse_config
from modelmix.simulated import Simulator
from tests.e2e.conftest import RunningGateway
from tests.e2e.ledger_rows import request_row

OWN, PAID, SLOW, FAST = "adaptive-own-7b", "adaptive-paid", "adaptive-slow", "adaptive-fast"


@pytest.fixture(scope="module")
def adaptive(
    simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("adaptive")
    url = simulator.base_url("openai")

    def model(name: str, **kw: Any) -> dict[str, Any]:
        price = {"input": "0.1", "output": "0.1"} if name == OWN else {"input": "1", "output": "2"}
        return {"name": name, "provider": "openai", "base_url": url, "price": price, **kw}

    config = parse_config(
        {
            "models": [model(OWN, capacity=2), model(PAID), model(SLOW), model(FAST)],
            "routes": [
                {"name": "spill", "models": [OWN, PAID]},
                {"name": "quick", "models": [SLOW, FAST], "adaptive": {"max_ttft_ms": 150}},
            ],
            "ledger": {"path": str(tmp / "ledger.db"), "flush_interval": 0.05},
            "engine": {"live_half_life": 0.3},
        }
    )
    simulator.load.set_capacity(OWN, 2)
    simulator.load.set_delay(OWN, 300)
    running = RunningGateway(config, env={})
    yield running
    running.stop()
    simulator.load.set_capacity(OWN, None)
    simulator.load.set_delay(OWN, 0)
    simulator.load.set_delay(SLOW, 0)


def _client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


def _ask(client: openai.OpenAI, route: str) -> tuple[str, str]:
    raw = client.chat.completions.with_raw_response.create(
        model=route, messages=[{"role": "user", "content": "What is 2 + 3?"}]
    )
    resp = raw.parse()
    return resp.model, raw.headers["x-request-id"]


def test_capacity_spills_the_overflow_and_no_request_fails(
    adaptive: RunningGateway, simulator: Simulator
) -> None:
    simulator.load.peak_running[OWN] = 0
    client = _client(adaptive)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: _ask(client, "spill"), range(6)))
    served = [m for m, _ in results]
    assert len(results) == 6  # every request answered
    assert simulator.load.peak_running[OWN] <= 2
    assert served.count(OWN) >= 2 and served.count(PAID) >= 1
    adaptive.flush()
    db = adaptive.gateway.config.ledger_path
    spilled = [json.loads(request_row(db, rid)["decision"]) for m, rid in results if m == PAID]
    assert all(d["passed_over"][0]["reason"].startswith("at capacity") for d in spilled)
    # room again: the next request goes to the own deployment
    assert _ask(client, "spill")[0] == OWN


def test_max_ttft_moves_away_from_a_slow_model_and_back(
    adaptive: RunningGateway, simulator: Simulator
) -> None:
    client = _client(adaptive)
    for _ in range(3):
        assert _ask(client, "quick")[0] == SLOW  # fast enough: first in the chain
    simulator.load.set_delay(SLOW, 400)
    served = [_ask(client, "quick")[0] for _ in range(4)]
    assert served[0] == SLOW and served[-1] == FAST  # one slow answer is enough to move
    _, rid = _ask(client, "quick")
    adaptive.flush()
    decision = json.loads(request_row(adaptive.gateway.config.ledger_path, rid)["decision"])
    assert "max_ttft_ms 150" in decision["passed_over"][0]["reason"]
    simulator.load.set_delay(SLOW, 0)  # recovered
    deadline = time.monotonic() + 10
    while _ask(client, "quick")[0] != SLOW:  # its bad news fades (half-life 0.3 s)
        assert time.monotonic() < deadline, "traffic never came back to the recovered model"
        time.sleep(0.2)
