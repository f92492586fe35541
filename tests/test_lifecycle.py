"""Every caller goes through the one request lifecycle, ``Gateway.run``: the HTTP endpoint,
the library API, eval calls and the quality loop's judge calls; and the quality loop does not
need the gateway module at all."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelmix.config import RouteConfig
from modelmix.engine import EngineStream
from modelmix.errors import GatewayError
from modelmix.evals.dataset import EvalItem, load_dataset
from modelmix.evals.runner import EvalRunner
from modelmix.evals.store import EvalStore
from modelmix.gateway import Gateway, Result
from modelmix.ledger.records import RequestRecord
from modelmix.portfolio import build_portfolio
from modelmix.quality.loop import QualityLoop
from modelmix.quality.policy import routes_document
from modelmix.quality.policy_store import PolicyStore
from modelmix.routing.strategy import Router
from modelmix.server.app import create_app
from modelmix.types import ChatRequest
from tests.helpers import make_config, sim_model

ASK = {"model": "sim-small", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, bool, str]]:
    """(api, streamed, record id) of every ``Gateway.run``, as the lifecycle saw it."""
    seen: list[tuple[str, bool, str]] = []
    original = Gateway.run

    async def spy(self: Gateway, request: Any, **kw: Any) -> Result | EngineStream:
        try:
            answer = await original(self, request, **kw)
        except GatewayError as err:
            assert err.record is not None
            seen.append((kw["api"], request.stream, err.record.id))
            raise
        seen.append((kw["api"], request.stream, answer.record.id))
        return answer

    monkeypatch.setattr(Gateway, "run", spy)
    return seen


async def test_http_library_and_eval_calls_share_one_lifecycle(
    tmp_path: Path, runs: list[tuple[str, bool, str]]
) -> None:
    db = tmp_path / "ledger.db"
    config = make_config(
        [sim_model("sim-small"), sim_model("sim-large")],
        ledger={"path": str(db), "flush_interval": 0.05},
        quality={"judge": {"model": "sim-large", "sample": 1}},
    )
    dataset = tmp_path / "d.jsonl"
    dataset.write_text('{"id": "q1", "prompt": "What is 2 + 2?", "reference": 4}\n')
    async with Gateway(config, background=False) as gw:
        http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=create_app(gw)), base_url="http://gw"
        )
        async with http:
            plain = await http.post("/v1/chat/completions", json=ASK)
            streamed = await http.post("/v1/chat/completions", json={**ASK, "stream": True})
            refused = await http.post("/v1/chat/completions", json={**ASK, "model": "nope"})
        library = await gw.chat(ASK)
        stream = await gw.chat_stream(ASK)
        text = "".join([d.content async for d in stream if d.content])
        with EvalStore(db) as store:
            summary = await EvalRunner(gw.run, store).run("r", load_dataset(dataset), ["sim-small"])
        assert gw.quality is not None
        await gw.quality.flush()  # the online judge's calls for the HTTP and library answers
        assert gw.ledger is not None
        gw.ledger.flush()
    assert plain.status_code == 200 and streamed.status_code == 200 and text
    assert refused.status_code == 404 and summary.done == 1
    apis = [(api, streamed) for api, streamed, _ in runs]
    assert apis.count(("openai", False)) == 2  # the answer and the unknown model's refusal
    assert ("openai", True) in apis and ("library", True) in apis
    assert ("library", False) in apis and ("eval", False) in apis and ("judge", False) in apis
    assert library.record.id in {rid for _, _, rid in runs}
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT id, api FROM requests").fetchall())
    assert rows == {rid: api for api, _, rid in runs}  # every ledger row came from run


async def test_a_failed_eval_call_keeps_its_ledger_record(
    tmp_path: Path, runs: list[tuple[str, bool, str]]
) -> None:
    config = make_config([sim_model("sim-small")], ledger={"path": str(tmp_path / "l.db")})
    async with Gateway(config, background=False) as gw:
        with EvalStore(tmp_path / "l.db") as store:
            item = EvalItem.model_validate({"id": "q", "prompt": "hi", "reference": 1})
            row = await EvalRunner(gw.run, store).one("r", item, "missing")
    assert runs == [("eval", False, row.request_id)]
    assert row.error is not None and row.error.startswith("model_not_found")


def test_the_quality_loop_does_not_import_the_gateway() -> None:
    code = (
        "import sys, modelmix.quality.loop, modelmix.evals.runner, modelmix.evals.calls;"
        "print(sorted(m for m in sys.modules if m in ('modelmix.gateway', 'modelmix.server')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


async def test_the_quality_loop_runs_on_narrow_parts(tmp_path: Path) -> None:
    """No gateway: the loop swaps the router through ``use_router``, sets the observer
    through ``set_observer`` and makes its judge calls through ``run``."""
    db = tmp_path / "ledger.db"
    models = [sim_model("a", upstream="sim-small"), sim_model("b", upstream="sim-large")]
    extra = {"ledger": {"path": str(db)}, "quality": {"judge": {"model": "b", "sample": 1}}}
    config = make_config(models, routes=[{"name": "r", "models": ["a"]}], **extra)
    served: list[tuple[Router, str | None]] = []
    observers: list[object] = []
    calls: list[tuple[str, str, str | None]] = []

    async def run(request: ChatRequest, *, api: str, parent: str | None = None) -> Result:
        calls.append((request.model, api, parent))
        err = GatewayError("unavailable", "no upstream in this test")
        err.record = RequestRecord(id="mm-judge", started_at=0.0, api=api, requested_model="b")
        raise err

    loop = QualityLoop(
        config,
        build_portfolio(config, {}, lambda provider: "http://127.0.0.1:9"),
        run=run,
        use_router=lambda router, version: served.append((router, version)),
        set_observer=observers.append,
        background=False,
    )
    try:
        assert "r" in loop.setup().routes and loop.state.live is not None
        loop.start()
        assert observers == [loop.online]  # the online judge is on
        with PolicyStore(db) as store:
            v2 = store.add_version(
                routes_document([RouteConfig.model_validate({"name": "r2", "models": ["b"]})]),
                "r2",
                "test",
            )
            store.deploy(v2)
        assert await loop.check_policy() is True
        assert [v for _, v in served] == [v2] and "r2" in served[0][0].routes
        live = RequestRecord(id="mm-live", started_at=0.0, api="openai", requested_model="r")
        live.final_model = "a"
        ask = ChatRequest(model="r", messages=[{"role": "user", "content": "hi"}])
        await loop.online.judge_live(ask, "hello", live)
        assert calls == [("b", "judge", "mm-live")]
    finally:
        await loop.close()
