"""Online exploration (issue 15, item 4): Thompson sampling on at most ``share`` of a route's
traffic, within the route's limits, and promotion proposed through the canary only.

The plan is driven by hand (sans-I/O) with posteriors set directly; the promotion test runs a
gateway on the simulated upstream whose small model gets arithmetic wrong and whose large one
gets it right, with the judge's scores in a real SQLite ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner

from modelmix.adaptive.explore import ExploreStrategy, Posteriors
from modelmix.adaptive.live import LiveStats
from modelmix.cli import main
from modelmix.config import ConfigError
from modelmix.dashboard.explore import exploration_rows, explore_card
from modelmix.errors import UpstreamError
from modelmix.gateway import Gateway
from modelmix.ledger.db import Location
from modelmix.ledger.opening import open_quality_db
from modelmix.portfolio import build_portfolio
from modelmix.quality.explore import beats
from modelmix.quality.policy_store import PolicyStore
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Attempt, Outcome, Router
from modelmix.types import ChatRequest, ChatResponse
from tests.conftest import BACKENDS, ledger_settings
from tests.helpers import make_config, sim_model
from tests.pg import PgServer


def _model(name: str, out: str = "2", **extra: Any) -> dict[str, Any]:
    return {"name": name, "provider": "ollama", "price": {"input": "1", "output": out}, **extra}


MODELS = [_model("base"), _model("good"), _model("bad"), _model("dear", out="400")]


def router(explore: dict[str, Any], adaptive: dict[str, Any] | None = None) -> Router:
    route: dict[str, Any] = {"name": "r", "models": ["base", "good", "bad"], "explore": explore}
    if adaptive:
        route["adaptive"] = adaptive
    config = make_config(MODELS, [route])
    return Router(config.routes, build_portfolio(config, {}))


def ok(model: str) -> Outcome:
    return Outcome(model, response=ChatResponse(id="x", model=model, content="fine"))


def drive(
    r: Router,
    post: Posteriors | None,
    live: LiveStats | None = None,
    pressure: float = 0.0,
    fails: tuple[str, ...] = (),
) -> tuple[list[str], dict[str, Any]]:
    request = ChatRequest(model="r", messages=[{"role": "user", "content": "hi"}])
    strategy, _ = r.resolve("r")
    decision: dict[str, Any] = {}
    plan = strategy.plan(request, needs_of(request, pressure, live, None, post), decision)
    called: list[str] = []
    attempt: Attempt = next(plan)
    while True:
        called.append(attempt.model)
        err = UpstreamError("server", "boom", status=500)
        sent = Outcome(attempt.model, error=err) if attempt.model in fails else ok(attempt.model)
        try:
            attempt = plan.send(sent)
        except StopIteration:
            return called, decision


POST = Posteriors({("r", "base"): (60.0, 100), ("r", "good"): (18.0, 20), ("r", "bad"): (2, 20)})


def test_exploration_stays_within_its_share_and_is_deterministic_with_a_seed() -> None:
    runs = []
    for _ in range(2):
        r = router({"share": 0.1, "seed": 7})
        runs.append([drive(r, POST)[0][0] for _ in range(1000)])
    assert runs[0] == runs[1]
    explored = sum(m != "base" for m in runs[0])
    assert 50 <= explored <= 100  # the default wins some draws; never above the share
    assert isinstance(router({"share": 0.1}).routes["r"], ExploreStrategy)


def test_thompson_sampling_favours_the_candidate_with_the_better_posterior() -> None:
    r = router({"share": 0.5, "seed": 1})
    picks = [drive(r, POST)[1].get("explore", {}).get("candidate") for _ in range(400)]
    assert picks.count("good") > 10 * max(picks.count("bad"), 1)
    note = next(d for d in (drive(r, POST)[1] for _ in range(10)) if "explore" in d)["explore"]
    assert note["candidate"] == "good" and note["mean"] == pytest.approx(19 / 22, abs=1e-4)
    assert 0 < note["draw"] < 1 and "thompson" in note["why"]


def test_no_posteriors_no_exploration() -> None:
    r = router({"share": 0.5, "seed": 1})
    assert all(drive(r, None)[0] == ["base"] for _ in range(50))


def test_no_exploration_under_budget_pressure() -> None:
    r = router({"share": 0.5, "seed": 1})
    notes = []
    for _ in range(50):
        _, decision = drive(r, POST, pressure=0.3)  # the route's plan degrades as usual
        assert "budget_degraded" in decision
        notes.append(decision.get("explore"))
    assert {"candidate": None, "why": "budget pressure"} in notes
    assert all(n is None or n["candidate"] is None for n in notes)


def test_a_candidate_over_max_cost_is_never_explored() -> None:
    config = make_config(
        MODELS,
        [{"name": "r", "models": ["base", "dear"], "explore": {"share": 0.5, "max_cost": 0.01}}],
    )
    r = Router(config.routes, build_portfolio(config, {}))
    post = Posteriors({("r", "dear"): (20.0, 20)})
    for _ in range(40):
        called, decision = drive(r, post)
        assert called == ["base"]
    assert "max_cost" in decision["explore"]["blocked"]["dear"]


def test_the_routes_latency_limit_blocks_a_candidate() -> None:
    live = LiveStats()
    live.seed("good#0", 2000.0, 50.0, 0.0, 100.0)  # predicted ttft 2 s > max_ttft_ms
    r = router({"share": 0.5, "seed": 3}, adaptive={"max_ttft_ms": 500})
    post = Posteriors({("r", "base"): (60.0, 100), ("r", "good"): (18.0, 20)})  # bad: unseen
    runs = [drive(r, post, live) for _ in range(200)]
    assert "good" not in {called[0] for called, _ in runs}
    assert "bad" in {called[0] for called, _ in runs}  # the other candidate still may be
    notes = [d["explore"] for _, d in runs if "explore" in d]
    assert all("max_ttft_ms" in n["blocked"]["good"] for n in notes)


def test_a_failed_exploration_falls_back_to_the_routes_plan() -> None:
    r = router({"share": 0.5, "seed": 1, "candidates": ["good"]})
    for _ in range(10):
        called, decision = drive(r, POST, fails=("good",))
        if called[0] == "good":
            break
    assert called == ["good", "base"] and decision["explore"]["failed"] is True
    assert decision["chosen"] == "base"


def test_unknown_candidates_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"explore.candidates\[0\]: unknown model"):
        make_config(MODELS, [{"name": "r", "models": ["base"], "explore": {"candidates": ["x"]}}])


def test_cascades_cannot_explore() -> None:
    route = {
        "name": "c",
        "strategy": "cascade",
        "models": ["base", "good"],
        "cascade": {"voters": ["base"], "strong": ["good"], "need": 1},
        "explore": {},
    }
    with pytest.raises(ConfigError, match=r"routes\[0\].explore: a cascade route"):
        make_config(MODELS, [route])


def test_beats_is_a_probability() -> None:
    assert beats((90, 10), (50, 50)) > 0.999
    assert beats((50, 50), (90, 10)) < 0.001
    assert beats((5, 5), (5, 5)) == pytest.approx(0.5)


ASK = {"model": "r", "messages": [{"role": "user", "content": "What is 2 * 3 + 4 - 1?"}]}


async def _explore_world(
    db: Location, data_dir: Path, default: str, candidate: str
) -> tuple[Location, Any]:
    """A gateway whose route ``r`` serves ``default`` and explores ``candidate``, every answer
    judged by the large model; returns the ledger and the proposed canary (or None)."""
    models = [sim_model("small", upstream="sim-small"), sim_model("large", upstream="sim-large")]
    route = {
        "name": "r",
        "models": [default, candidate],
        "explore": {"share": 0.5, "min_samples": 8, "seed": 5, "candidates": [candidate]},
    }
    config = make_config(
        models,
        routes=[route],
        quality={"judge": {"model": "large", "sample": 1.0}},
        **ledger_settings(db, data_dir, flush_interval=0.05),
    )
    async with Gateway(config, background=False) as gw:
        loop = gw.quality
        assert loop is not None and gw.engine.posteriors is loop.explorer.posteriors
        served = set()
        for _ in range(40):
            served.add((await gw.chat(ASK)).record.final_model)
        await loop.flush()
        assert gw.ledger is not None
        gw.ledger.flush()
        live_before = gw.policy_version
        proposed = await loop.check_exploration()
        assert served == {default, candidate}
        arms = loop.explorer.posteriors.arms
        assert arms[("r", default)][1] >= 8 and arms[("r", candidate)][1] >= 8
        assert gw.policy_version == live_before  # never promoted here: only a canary proposed
        rows = exploration_rows(gw)  # the dashboard's card: one row per candidate
        assert [(r["model"], r["default"]) for r in rows] == [(default, True), (candidate, False)]
        assert rows[1]["labelled"] == arms[("r", candidate)][1]
        assert "Exploration" in explore_card({"exploration": rows})
    conn = open_quality_db(db)  # the ledger's decisions say what was explored, and why
    try:
        cur = conn.execute("SELECT decision FROM requests WHERE route = 'r'")
        decisions = [orjson.loads(r["decision"]) for r in cur.fetchall()]
    finally:
        conn.close()
    notes = [d["explore"] for d in decisions if "explore" in d]
    assert notes and all(n["candidate"] == candidate and "thompson" in n["why"] for n in notes)
    report = CliRunner().invoke(main, ["report", "--db", str(db), "--by", "route"])
    assert report.exit_code == 0, report.output
    assert "exploration" in report.output and candidate in report.output
    return db, proposed


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_better_candidate_is_proposed_as_a_canary_and_a_worse_one_never(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    def fresh(name: str) -> Location:
        if backend == "postgresql":
            server: PgServer = request.getfixturevalue("pg_server")
            return server.new_database()
        (tmp_path / name).mkdir()
        return tmp_path / name / "ledger.db"

    db, proposed = await _explore_world(fresh("better"), tmp_path, "small", "large")
    assert proposed is not None
    with PolicyStore(db) as store:
        state = store.state()
        assert state.canary == proposed and state.canary_share == 0.1
        assert state.canary_settings["explore"]["candidate"] == "large"
        routes = store.version(proposed).document["routes"]
        assert routes[0]["models"] == ["large", "small"]
        assert state.live != proposed  # the canary's guardrails decide, not the exploration
    _, none = await _explore_world(fresh("worse"), tmp_path, "large", "small")
    assert none is None


def test_budgets_reserve_for_the_dearest_candidate_too() -> None:
    """A hard budget reserves the worst case of the dearest model a route may call: the
    exploration's candidates count, so exploring cannot take a request past a budget."""
    from modelmix.budgets.accounting import Accounting

    config = make_config(
        MODELS,
        [{"name": "r", "models": ["base"], "explore": {"candidates": ["dear"]}}],
        budgets={"global": [{"kind": "hard", "period": "total", "limit_usd": "1"}]},
    )
    assert config.routes[0].all_models() == ["base", "dear"]
    accounting = Accounting(config.budgets, None)
    accounting.start(build_portfolio(config, {}), config.routes, None, None)
    try:
        # the route's output rate is the dearest candidate's (400 USD / M), not base's (2)
        assert accounting.estimator.output_rate("r") == accounting.estimator.output_rate("dear")
        assert accounting.estimator.output_rate("r") > accounting.estimator.output_rate("base")
    finally:
        accounting.close()
