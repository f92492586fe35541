"""The adaptive plan (sans-I/O): latency limits, capacity spill-over, last resort, the price of
a second on a learned route, and deployment choice; driven by hand with live estimates."""

from __future__ import annotations

import random
import time
from typing import Any

from modelmix.adaptive.live import LiveStats
from modelmix.adaptive.pick import pick_deployment
from modelmix.adaptive.plan import AdaptiveStrategy
from modelmix.errors import UpstreamError
from modelmix.portfolio import build_portfolio
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Attempt, Outcome, Router
from modelmix.types import ChatRequest, ChatResponse
from tests.helpers import make_config


def _model(name: str, out: str = "2", **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": "ollama", "price": {"input": "1", "output": out}, **extra}


MODELS = [
    _model("own", out="0.1", capacity=2),
    _model("fast", out="4"),
    _model("slow", out="1"),
]
ROUTES = [
    {"name": "spill", "models": ["own", "fast"]},
    {"name": "quick", "models": ["slow", "fast"], "adaptive": {"max_ttft_ms": 500}},
    {"name": "plain", "models": ["slow", "fast"]},
    {
        "name": "smart",
        "strategy": "learned",
        "models": ["slow", "fast"],
        "learned": {"profiles": {"slow": 0.9, "fast": 0.85}, "quality_target": 0.9},
        "adaptive": {"latency_weight": 0.01},
    },
]


def router() -> Router:
    config = make_config(MODELS, ROUTES)
    return Router(config.routes, build_portfolio(config, {}))


def ok(model: str) -> Outcome:
    return Outcome(model, response=ChatResponse(id="r", model=model, content="fine"))


def drive(
    r: Router, route: str, live: LiveStats | None, fails: tuple[str, ...] = ()
) -> tuple[list[str], Outcome | None, dict[str, Any]]:
    request = ChatRequest(model=route, messages=[{"role": "user", "content": "hi there"}])
    strategy, _ = r.resolve(route)
    decision: dict[str, Any] = {}
    plan = strategy.plan(request, needs_of(request, 0.0, live), decision)
    called: list[str] = []
    attempt: Attempt = next(plan)
    while True:
        called.append(attempt.model)
        sent = (
            Outcome(attempt.model, error=UpstreamError("server", "boom", status=500))
            if attempt.model in fails
            else ok(attempt.model)
        )
        try:
            attempt = plan.send(sent)
        except StopIteration as stop:
            return called, stop.value, decision


def test_routes_without_knobs_or_capacity_are_not_wrapped() -> None:
    r = router()
    assert not isinstance(r.routes["plain"], AdaptiveStrategy)
    assert isinstance(r.routes["spill"], AdaptiveStrategy)  # a model with a capacity


def test_deployment_at_capacity_spills_to_the_next_model_and_traffic_returns() -> None:
    r, live = router(), LiveStats()
    assert drive(r, "spill", live)[0] == ["own"]
    live.begin("own#0")
    live.begin("own#0")
    called, outcome, decision = drive(r, "spill", live)
    assert called == ["fast"] and outcome is not None and outcome.ok
    assert decision["passed_over"] == [{"model": "own", "reason": "at capacity: 2/2 in flight"}]
    live.release("own#0")  # room again: back to the own deployment
    assert drive(r, "spill", live)[0] == ["own"]


def test_full_deployment_still_serves_when_nothing_else_can() -> None:
    r, live = router(), LiveStats()
    live.begin("own#0")
    live.begin("own#0")
    called, outcome, decision = drive(r, "spill", live, fails=("fast",))
    assert called == ["fast", "own"] and outcome is not None and outcome.ok
    assert decision["served_despite"].startswith("at capacity")


def test_max_ttft_passes_over_a_slow_model_until_it_recovers() -> None:
    r, live = router(), LiveStats(half_life=5.0)
    assert drive(r, "quick", live)[0] == ["slow"]  # unknown: not passed over
    for _ in range(3):
        live.end("slow#0", ok=True, ttft_ms=2000.0, tokens=10, latency_ms=2100.0)
    called, _, decision = drive(r, "quick", live)
    assert called == ["fast"]
    assert "max_ttft_ms 500" in decision["passed_over"][0]["reason"]
    assert drive(r, "plain", live)[0] == ["slow"]  # a latency-blind route does not care


def test_a_faded_slow_model_is_tried_one_request_at_a_time() -> None:
    """Bad news a minute old has faded under the limit: the model gets one probe, and while
    that probe is in flight the route sends the rest elsewhere (a half-open breaker)."""
    r, live = router(), LiveStats(half_life=5.0)
    now = time.time()
    for _ in range(50):
        live.end("slow#0", ok=True, ttft_ms=100.0, now=now - 120.0)
    for _ in range(3):
        live.end("slow#0", ok=True, ttft_ms=2000.0, now=now - 60.0)
    assert drive(r, "quick", live)[0] == ["slow"]  # the probe
    live.begin("slow#0")  # ... still in flight
    called, _, decision = drive(r, "quick", live)
    assert called == ["fast"]
    assert decision["passed_over"][0]["reason"].startswith("on probation: latest ttft 2000 ms")
    live.end("slow#0", ok=True, ttft_ms=90.0)  # the probe answered in time
    assert drive(r, "quick", live)[0] == ["slow"]
    live.begin("slow#0")
    assert drive(r, "quick", live)[0] == ["slow"]  # recovered: no longer one at a time


def test_slow_model_is_called_when_the_other_fails() -> None:
    r, live = router(), LiveStats()
    live.end("slow#0", ok=True, ttft_ms=2000.0)
    called, outcome, decision = drive(r, "quick", live, fails=("fast",))
    assert called == ["fast", "slow"] and outcome is not None and outcome.ok
    assert "max_ttft_ms" in decision["served_despite"]


def test_latency_weight_moves_a_learned_route_to_the_faster_model() -> None:
    r, live = router(), LiveStats()
    called, _, decision = drive(r, "smart", live)
    assert called == ["slow"] and decision["latency_choice"] == "slow"  # nothing known
    assert "passed_over" not in decision
    for _ in range(5):
        live.end("slow#0", ok=True, ttft_ms=3000.0, tokens=100, latency_ms=5000.0)
        live.end("fast#0", ok=True, ttft_ms=100.0, tokens=100, latency_ms=300.0)
    called, _, decision = drive(r, "smart", live)
    assert called == ["fast"] and decision["latency_choice"] == "fast"
    assert decision["passed_over"] == [{"model": "slow", "reason": "latency_weight"}]


def test_deployment_choice_prefers_room_then_balance() -> None:
    config = make_config(
        [
            _model(
                "m",
                balance="least_busy",
                deployments=[{"capacity": 1}, {"capacity": 4}, {"capacity": 4}],
            ),
            _model("n", balance="latency", deployments=[{}, {}]),
        ]
    )
    portfolio = build_portfolio(config, {})
    live, rng = LiveStats(), random.Random(0)
    deps = portfolio["m"].deployments
    live.begin("m#1")
    assert pick_deployment(deps, live, rng).id == "m#0"
    live.begin("m#0")  # m#0 is full now
    assert pick_deployment(deps, live, rng).id == "m#2"
    ndeps = portfolio["n"].deployments
    live.end("n#0", ok=True, ttft_ms=900.0)
    live.end("n#1", ok=True, ttft_ms=100.0)
    assert pick_deployment(ndeps, live, rng).id == "n#1"


def test_max_latency_uses_the_predicted_completion_length() -> None:
    config = make_config(
        MODELS,
        [{"name": "whole", "models": ["slow", "fast"], "adaptive": {"max_latency_ms": 1000}}],
    )
    r, live = Router(config.routes, build_portfolio(config, {})), LiveStats()
    # quick to start, but 20 tokens/s over a typical 100-token answer: ~5.1 s in all
    live.end("slow#0", ok=True, ttft_ms=100.0, tokens=100, latency_ms=5100.0)
    called, _, decision = drive(r, "whole", live)
    assert called == ["fast"]
    assert decision["passed_over"][0]["reason"] == (
        "predicted latency 5100 ms > max_latency_ms 1000"
    )
    request = ChatRequest(
        model="whole", messages=[{"role": "user", "content": "hi"}], params={"max_tokens": 10}
    )
    strategy, _ = r.resolve("whole")
    # at most 10 tokens (the typical length capped by max_tokens): 100 ms + 0.5 s, in time
    assert next(strategy.plan(request, needs_of(request, 0.0, live), {})).model == "slow"


def test_max_error_rate_passes_over_a_failing_model() -> None:
    config = make_config(
        MODELS, [{"name": "safe", "models": ["slow", "fast"], "adaptive": {"max_error_rate": 0.5}}]
    )
    r, live = Router(config.routes, build_portfolio(config, {})), LiveStats()
    live.end("slow#0", ok=False)
    assert drive(r, "safe", live)[0] == ["slow"]  # one failure: 0.3 of recent calls
    live.end("slow#0", ok=False)
    live.end("slow#0", ok=False)
    called, _, decision = drive(r, "safe", live)
    assert called == ["fast"] and decision["passed_over"][0]["reason"].startswith("error rate")
