"""The live estimates in a real gateway (in-process simulator, SQLite ledger): answers and
streams update them, a stream is in flight until it ends, and a gateway started on the same
ledger later is seeded from its attempts."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelmix.config import Config
from modelmix.gateway import Gateway
from tests.helpers import make_config, sim_model


def _config(tmp: Path) -> Config:
    return make_config(
        [sim_model("m", upstream="sim-ttft30")],
        [{"name": "r", "models": ["m"], "adaptive": {"max_ttft_ms": 5000}}],
        ledger={"path": str(tmp / "ledger.db"), "flush_interval": 0.05},
    )


async def test_answers_update_the_estimates_and_a_restart_is_seeded(tmp_path: Path) -> None:
    config = _config(tmp_path)
    async with Gateway(config, env={}) as gw:
        live = gw.engine.live
        for _ in range(3):
            await gw.chat({"model": "r", "messages": [{"role": "user", "content": "2+2?"}]})
        est = live.estimate("m#0")
        assert est.samples == 3 and est.ttft_ms is not None and est.ttft_ms >= 30
        stream = await gw.chat_stream(
            {"model": "r", "messages": [{"role": "user", "content": "3+3?"}]}
        )
        assert live.in_flight("m#0") == 1  # started, not finished
        _ = [d async for d in stream]
        assert live.in_flight("m#0") == 0 and live.estimate("m#0").samples == 4
        assert gw.ledger is not None
        gw.ledger.flush()
        seen = est.ttft_ms
    async with Gateway(config, env={}) as gw:
        seeded = gw.engine.live.estimate("m#0")
        assert seeded.samples == 1  # the ledger's baseline, before any answer
        assert seeded.ttft_ms == pytest.approx(seen, rel=0.5)
