"""``Gateway.run`` with Redis counters: admission awaits its reservation on the event loop's
own connection (``state/resp.py``), the settlement goes out on it without the writer thread,
and 64 concurrent requests against a hard budget spend exactly what the ledger says."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

from modelmix.config import parse_config
from modelmix.gateway import Gateway
from modelmix.types import ChatRequest
from tests.helpers import sim_model
from tests.state.redis_server import RedisServer


def test_run_reserves_and_settles_on_the_loop(tmp_path: Path, redis_server: RedisServer) -> None:
    config = parse_config(
        {
            "models": [sim_model("m")],
            "ledger": {"path": str(tmp_path / "ledger.db")},
            "state": {"redis_url": redis_server.url},
            "budgets": {"global": [{"kind": "hard", "period": "day", "limit_usd": 10}]},
        }
    )

    async def run() -> tuple[Decimal, Decimal, int]:
        gw = Gateway(config, env={})
        await gw.start()
        try:
            link = gw.accounting.link
            assert link is not None
            request = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])
            first = await gw.run(request, api="library")  # seeds the day's counter (blocking)

            def blocking(*_: object) -> None:
                raise AssertionError("the request path used the blocking client")

            link.script = blocking  # type: ignore[method-assign]
            results = [first]
            results += await asyncio.gather(*(gw.run(request, api="library") for _ in range(64)))
            spent = sum((Decimal(str(r.record.cost_usd)) for r in results), Decimal(0))  # type: ignore[union-attr]
            aio = link.aio(asyncio.get_running_loop())
            for _ in range(200):  # the settlements' answers
                if aio.unanswered == 0:
                    break
                await asyncio.sleep(0.01)
            assert aio.unanswered == 0 and aio.connected  # its connection served them
            assert link.pending == 0  # nothing went through the writer thread's queue
            store = gw.accounting.budgets.store
            counters = store.peek([next(iter(store._names))])  # type: ignore[attr-defined]
            assert counters[0] is not None
            got_spent, reserved = counters[0]
            return spent, got_spent, int(reserved * 10**10)
        finally:
            await gw.close()

    spent, in_redis, reserved = asyncio.run(run())
    assert spent > 0
    assert abs(in_redis - spent) < Decimal("1e-8") * 64  # unit rounding only
    assert reserved == 0  # every reservation released
