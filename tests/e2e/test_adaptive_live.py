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
from tests.e2e.ledger_rows import attempt_rows, request_row

OWN, PAID, SLOW, FAST = "adaptive-own-7b", "adaptive-paid", "adaptive-slow", "adaptive-fast"
CHEAP, DEAR, POOL = "adaptive-cheap", "adaptive-dear", "adaptive-pool"


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
            "models": [
                model(OWN, capacity=2),
                model(PAID),
                model(SLOW),
                model(FAST),
                {**model(CHEAP), "price": {"input": "0.1", "output": "0.1"}},
                model(DEAR),
                model(
                    POOL,
                    balance="least_busy",
                    deployments=[
                        {"model": "adaptive-pool-a", "capacity": 1},
                        {"model": "adaptive-pool-b", "capacity": 1},
                    ],
                ),
            ],
            "routes": [
                {
                    "name": "priced",
                    "strategy": "learned",
                    "models": [CHEAP, DEAR],
                    "learned": {"profiles": {CHEAP: 0.9, DEAR: 0.9}, "quality_target": 0.9},
                    "adaptive": {"latency_weight": 0.001},
                },
                {"name": "spill", "models": [OWN, PAID]},
                {"name": "quick", "models": [SLOW, FAST], "adaptive": {"max_ttft_ms": 150}},
            ],
            "ledger": {"path": str(tmp / "ledger.db"), "flush_interval": 0.05},
            "engine": {"live_half_life": 2.0},
        }
    )
    simulator.load.set_capacity(OWN, 2)
    simulator.load.set_delay(OWN, 300)
    for upstream in ("adaptive-pool-a", "adaptive-pool-b"):
        simulator.load.set_delay(upstream, 300)
    running = RunningGateway(config, env={})
    yield running
    running.stop()
    simulator.load.set_capacity(OWN, None)
    simulator.load.set_delay(OWN, 0)
    for upstream in (SLOW, CHEAP, "adaptive-pool-a", "adaptive-pool-b"):
        simulator.load.set_delay(upstream, 0)


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
    assert served[0] == SLOW and served[-1] == FAST  # a couple of slow answers: it moves
    model, rid = _ask(client, "quick")
    assert model == FAST
    adaptive.flush()
    decision = json.loads(request_row(adaptive.gateway.config.ledger_path, rid)["decision"])
    assert "max_ttft_ms 150" in decision["passed_over"][0]["reason"]
    simulator.load.set_delay(SLOW, 0)  # recovered
    deadline = time.monotonic() + 30
    while _ask(client, "quick")[0] != SLOW:  # its bad news fades (half-life 2 s)
        assert time.monotonic() < deadline, "traffic never came back to the recovered model"
        time.sleep(0.2)


def test_latency_weight_moves_a_learned_route_to_the_faster_model(
    adaptive: RunningGateway, simulator: Simulator
) -> None:
    client = _client(adaptive)
    assert _ask(client, DEAR)[0] == DEAR  # a direct call measures it too
    assert _ask(client, "priced")[0] == CHEAP  # equal quality and speed: the cheaper one
    simulator.load.set_delay(CHEAP, 800)
    served = [_ask(client, "priced") for _ in range(5)]
    models = [m for m, _ in served]
    assert models[0] == CHEAP  # its slow answers are what tell
    # within a few answers 0.8 s x 0.001 USD/s outweighs the price difference, and stays so
    assert models[-1] == DEAR and models.count(DEAR) >= 2
    rid = served[-1][1]
    adaptive.flush()
    decision = json.loads(request_row(adaptive.gateway.config.ledger_path, rid)["decision"])
    assert decision["latency_choice"] == DEAR
    assert decision["passed_over"] == [{"model": CHEAP, "reason": "latency_weight"}]


def test_least_busy_spreads_over_deployments_with_room(
    adaptive: RunningGateway, simulator: Simulator
) -> None:
    client = _client(adaptive)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: _ask(client, POOL), range(2)))
    adaptive.flush()
    db = adaptive.gateway.config.ledger_path
    deployments = {attempt_rows(db, rid)[0]["deployment"] for _, rid in results}
    assert deployments == {f"{POOL}#0", f"{POOL}#1"}  # one each: both have capacity 1
