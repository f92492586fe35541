"""A running gateway follows the serving policy: routes, version stamps and shadows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from modelmix.gateway import Gateway
from modelmix.quality.policy import routes_document
from modelmix.quality.policy_store import PolicyStore
from tests.helpers import make_config, sim_model

MODELS = [sim_model("a", upstream="sim-small"), sim_model("b", upstream="sim-large")]


async def test_a_deployed_version_brings_its_routes_and_shadows(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    extra = {
        "ledger": {"path": str(db), "flush_interval": 0.05},
        "quality": {"judge": {"model": "b"}},
    }
    config = make_config(MODELS, routes=[{"name": "r", "models": ["a"]}], **extra)
    new = make_config(
        MODELS,
        routes=[{"name": "r", "models": ["a"], "shadow": {"model": "b", "sample": 1}}],
        **extra,
    )
    async with Gateway(config, background=False) as gw:
        loop = gw.quality
        assert loop is not None and gw.engine.observer is None  # nothing to observe yet
        v1 = gw.policy_version
        ask = {"model": "r", "messages": [{"role": "user", "content": "What is 2 * 3 + 4 - 1?"}]}
        first = await gw.chat(ask)
        assert await loop.check_policy() is False  # nothing changed
        with PolicyStore(db) as store:
            v2 = store.add_version(routes_document(new.routes), "shadow b", "test")
            store.deploy(v2)
        assert await loop.check_policy() is True
        assert gw.policy_version == v2 and gw.engine.observer is loop.online
        second = await gw.chat(ask)
        await loop.flush()
    assert first.record.policy_version == v1 and second.record.policy_version == v2
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT model, score FROM eval_results WHERE run_id = 'shadow:r' ORDER BY model"
        ).fetchall()
        stamped = dict(
            conn.execute("SELECT id, policy_version FROM requests WHERE api = 'library'").fetchall()
        )
    assert rows == [("a", 0.0), ("b", 1.0)]  # 3 operators: the small model is wrong
    assert stamped == {first.record.id: v1, second.record.id: v2}


async def test_a_restart_keeps_the_deployed_version_unless_the_file_changed(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    extra = {"ledger": {"path": str(db), "flush_interval": 0.05}}
    config = make_config(MODELS, routes=[{"name": "r", "models": ["a"]}], **extra)
    other = make_config(MODELS, routes=[{"name": "r", "models": ["b"]}], **extra)
    async with Gateway(config, background=False) as gw:
        v1 = gw.policy_version
    with PolicyStore(db) as store:
        v2 = store.add_version(routes_document(other.routes), "b", "test")
        store.deploy(v2)
    async with Gateway(config, background=False) as gw:  # same file: the deployed one serves
        assert gw.policy_version == v2
        assert (
            await gw.chat({"model": "r", "messages": [{"role": "user", "content": "hi"}]})
        ).record.final_model == "b"
    edited = make_config(MODELS, routes=[{"name": "r", "models": ["a", "b"]}], **extra)
    async with Gateway(edited, background=False) as gw:  # an edited file wins
        assert gw.policy_version not in (v1, v2)
