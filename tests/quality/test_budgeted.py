"""The quality loop's own calls go through admission like any client's: a budget on the
``modelmix:judge`` tag caps what the online judge may spend."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from modelmix.gateway import Gateway
from tests.helpers import make_config, sim_model


async def test_a_spent_judge_budget_stops_judging_not_serving(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    config = make_config(
        [sim_model("m", upstream="sim-large"), sim_model("judge", upstream="sim-large")],
        routes=[{"name": "r", "models": ["m"]}],
        ledger={"path": str(db), "flush_interval": 0.05},
        quality={"judge": {"model": "judge", "sample": 1.0}},
        budgets={
            "tags": {"modelmix:judge": [{"kind": "hard", "period": "total", "limit_usd": 0.001}]}
        },
    )
    async with Gateway(config, background=False) as gw:
        assert gw.quality is not None
        for i in range(30):
            result = await gw.chat(
                {"model": "r", "messages": [{"role": "user", "content": f"What is {i} + 1?"}]}
            )
            assert result.response.content is not None  # clients are always served
            await gw.quality.flush()
    with sqlite3.connect(db) as conn:
        judged = conn.execute("SELECT COUNT(*) FROM judgements").fetchone()[0]
        refused = conn.execute(
            "SELECT COUNT(*) FROM requests WHERE api = 'judge' AND http_status = 429"
        ).fetchone()[0]
        spent = conn.execute(
            "SELECT SUM(CAST(cost_usd AS REAL)) FROM requests WHERE api = 'judge'"
        ).fetchone()[0]
    assert 0 < judged < 30 and refused == 30 - judged
    assert spent <= 0.001
