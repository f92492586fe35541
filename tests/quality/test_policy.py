"""Policy versions, the serving state, and two versions side by side in one router."""

from __future__ import annotations

import contextlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from modelmix.config import ConfigError
from modelmix.ledger.db import Location
from modelmix.portfolio import build_portfolio
from modelmix.quality.policy import (
    build_router,
    diff,
    load_policy_file,
    routes_document,
    validate_routes,
    version_of,
)
from modelmix.quality.policy_store import PolicyError, PolicyStore
from modelmix.routing.canary import CanaryStrategy, bucket, sticky_id
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Outcome
from modelmix.types import ChatRequest
from tests.helpers import make_config, sim_model

MODELS = [sim_model("a"), sim_model("b"), sim_model("c")]
V1 = [{"name": "r", "models": ["a"]}, {"name": "other", "models": ["c"]}]
V2 = [{"name": "r", "models": ["b"]}, {"name": "other", "models": ["c"]}]


def doc(routes: list[dict[str, Any]]) -> dict[str, Any]:
    return routes_document(make_config(MODELS, routes).routes)


def test_versions_are_content_hashes() -> None:
    assert version_of(doc(V1)) == version_of(doc([dict(r) for r in V1]))
    assert version_of(doc(V1)) != version_of(doc(V2))
    # defaults are left out: writing them explicitly is the same policy
    explicit = [{**V1[0], "strategy": "fallback"}, V1[1]]
    assert version_of(doc(explicit)) == version_of(doc(V1))
    text = diff(doc(V1), doc(V2), "v1", "v2")
    assert "-  models: [a]" in text and "+  models: [b]" in text


def test_policy_files_are_checked_against_the_models(tmp_path: Path) -> None:
    config = make_config(MODELS, V1)
    good = tmp_path / "p.yaml"
    good.write_text("routes:\n  - {name: r, models: [b]}\n")
    assert [r.models for r in load_policy_file(config, good)] == [["b"]]
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - {name: r, models: [zz], strategi: x}\n")
    with pytest.raises(ConfigError) as info:
        load_policy_file(config, bad)
    assert "routes[0].strategi: unknown key" in info.value.errors
    with pytest.raises(ConfigError) as info:
        validate_routes(config, [{"name": "r", "models": ["zz"]}], "p")
    assert info.value.errors == ["routes[0].models[0]: unknown model 'zz'"]
    (tmp_path / "none.yaml").write_text("models: []\n")
    with pytest.raises(ConfigError, match="routes:"):
        load_policy_file(config, tmp_path / "none.yaml")


def test_state_file_sync_deploy_rollback(ledger_at: Location) -> None:
    clock = iter(range(1000, 2000))
    with PolicyStore(ledger_at, clock=lambda: float(next(clock))) as store:
        v1 = version_of(doc(V1))
        state = store.sync_file(doc(V1), "config file")
        assert (state.live, state.file_version) == (v1, v1)
        v2 = store.add_version(doc(V2), "use b", "test", v1)
        assert store.version(v2[:5]).message == "use b"
        state = store.deploy(v2)
        assert state.live == v2
        # a restart with the same file keeps the deployed version...
        assert store.sync_file(doc(V1), "config file").live == v2
        state = store.rollback()
        assert state.live == v1
        assert store.rollback().live == v2  # and back again
        # ...an edited file wins
        v3_doc = doc([{"name": "r", "models": ["c"]}])
        assert store.sync_file(v3_doc, "config file").live == version_of(v3_doc)
        kinds = [e.kind for e in store.events()]
        assert kinds == ["deploy", "rollback", "rollback", "deploy", "deploy"]  # newest first
        with pytest.raises(PolicyError, match="no policy version"):
            store.version("ffff")
        with pytest.raises(PolicyError, match="no canary"):
            store.version("canary")


def test_canary_lifecycle(ledger_at: Location) -> None:
    with PolicyStore(ledger_at) as store:
        v1 = store.sync_file(doc(V1), "f").live
        assert v1 is not None
        v2 = store.add_version(doc(V2), "b", "t")
        with pytest.raises(PolicyError, match="already live"):
            store.start_canary(v1, 0.5, "session")
        state = store.start_canary(v2, 0.25, "user")
        assert (state.canary, state.canary_share, state.canary_sticky) == (v2, 0.25, "user")
        with pytest.raises(PolicyError, match="is running"):
            store.start_canary(v2, 0.25, "user")
        assert store.count_look(v2, 20) == 1 and store.count_look(v2, 40) == 2
        assert store.state().canary_settings["looked_at"] == 40
        assert store.end_canary(v2, "promote", {"why": "better"})
        assert not store.end_canary(v2, "rollback", {})  # already ended: no double decision
        state = store.state()
        assert state.live == v2 and state.canary is None
        assert store.previous_live() == v1


def _request(user: str | None = None, **meta: str) -> ChatRequest:
    params = {"user": user} if user else {}
    return ChatRequest(
        model="r", messages=[{"role": "user", "content": "hi"}], params=params, metadata=meta
    )


def test_router_serves_two_versions_side_by_side() -> None:
    config = make_config(MODELS, V1)
    portfolio = build_portfolio(config, {}, lambda kind: "http://sim.invalid")
    stable = list(config.routes)
    candidate = list(make_config(MODELS, V2).routes)
    router = build_router(portfolio, stable, "v1", candidate, "v2", share=0.3, sticky="user")
    strategy, _ = router.resolve("r")
    assert isinstance(strategy, CanaryStrategy)
    assert not isinstance(router.resolve("other")[0], CanaryStrategy)  # unchanged route
    arms: Counter[str] = Counter()
    for i in range(2000):
        request = _request(user=f"u{i}")
        decision: dict[str, Any] = {}
        plan = strategy.plan(request, needs_of(request), decision)
        attempt = next(plan)
        expected = "b" if decision["canary"]["arm"] == "candidate" else "a"
        assert attempt.model == expected
        assert decision["policy_version"] == ("v2" if expected == "b" else "v1")
        assert decision["canary"]["sticky"] is True
        arms[decision["canary"]["arm"]] += 1
        again: dict[str, Any] = {}
        next(strategy.plan(request, needs_of(request), again))
        assert again["canary"]["arm"] == decision["canary"]["arm"]  # sticky
        with contextlib.suppress(StopIteration):
            plan.send(Outcome(attempt.model))
    assert 0.25 < arms["candidate"] / 2000 < 0.35


def test_sticky_ids() -> None:
    assert sticky_id(_request(user="x"), "user") == "user=x"
    assert sticky_id(_request(session_id="s1"), "session") == "session_id=s1"
    assert sticky_id(_request(session_id="s1"), "user") is None
    assert sticky_id(_request(), "session") is None
    assert bucket("v2", "user=x") == bucket("v2", "user=x") != bucket("v3", "user=x")
