"""A replica starts while Redis is down: it comes up (not ready under fail_closed, answering
503 to counted requests), and uses Redis once it is there; fail_open counts locally."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from modelmix.config import parse_config
from modelmix.errors import GatewayError
from modelmix.gateway import Gateway
from modelmix.types import ChatRequest
from tests.helpers import sim_model
from tests.state.redis_server import RedisServer


def _config(tmp: Path, url: str, policy: str) -> object:
    return parse_config(
        {
            "models": [sim_model("m")],
            "ledger": {"path": str(tmp / "ledger.db")},
            "state": {"redis_url": url, "on_unavailable": policy, "probe_interval": 0.05},
            "budgets": {"global": [{"kind": "hard", "period": "day", "limit_usd": 10}]},
        }
    )


@pytest.mark.parametrize("policy", ["fail_closed", "fail_open"])
def test_starts_while_redis_is_down(tmp_path: Path, policy: str) -> None:
    server = RedisServer(tmp_path)  # not started yet: its port refuses connections

    async def run() -> None:
        gw = Gateway(_config(tmp_path, server.url, policy), env={})  # type: ignore[arg-type]
        await gw.start()
        try:
            link = gw.accounting.link
            assert link is not None and not link.up
            request = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])
            record = gw.new_record("library", request)
            if policy == "fail_closed":
                assert link.problems() == ["shared state (Redis) is unreachable"]
                with pytest.raises(GatewayError) as err:
                    gw.admit(request, record, None)
                assert err.value.status == 503
            else:
                assert link.problems() == []
                gw.admit(request, record, None)
                assert record.decision["shared_state"] == "local"
            server.start()
            deadline = time.monotonic() + 10
            while not link.up:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            record = gw.new_record("library", request)
            admission = gw.admit(request, record, None)
            assert "shared_state" not in record.decision
            assert admission.reservation is not None and admission.reservation.amount > 0
            client = server.client()
            assert client.keys("mm:spend:global:*")  # the counter now lives in Redis
            client.close()
        finally:
            await gw.close()
            server.stop()

    asyncio.run(run())
