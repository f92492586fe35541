"""Hard budgets under bursts (issue 14, finding 2): 32 concurrent requests on a cold route with
answers far longer than the old 256-token estimate, and an upstream that ignores max_tokens.
The ledger's total spend must stay within the bound the README states."""

from __future__ import annotations

import asyncio
import sqlite3
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.attack.conftest import HardenedGateway, fault_config
from tests.attack.fault_upstream import CHUNK_TOKENS, FaultUpstream

LIMIT = Decimal("0.05")
#: $10 per million output tokens: one 20-token chunk
CHUNK_COST = Decimal(10) * CHUNK_TOKENS / 1_000_000


def _spent(gw: HardenedGateway) -> tuple[Decimal, int]:
    gw.flush()
    conn = sqlite3.connect(Path(gw.gateway.config.ledger_path))
    try:
        rows = conn.execute("SELECT cost_usd, status FROM requests").fetchall()
    finally:
        conn.close()
    return sum((Decimal(c) for c, _ in rows), Decimal(0)), sum(s == "ok" for _, s in rows)


async def _burst(gw: HardenedGateway, body: dict[str, Any], n: int = 32) -> list[int]:
    async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:

        async def one() -> int:
            if body.get("stream"):
                async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                    await r.aread()
                    return r.status_code
            r = await client.post("/v1/chat/completions", json=body)
            return r.status_code

        return await asyncio.gather(*[one() for _ in range(n)])


def _gateway(faults: FaultUpstream, tmp: Path, model: str) -> HardenedGateway:
    config = fault_config(
        faults,
        tmp,
        model,
        budgets={"global": [{"kind": "hard", "period": "total", "limit_usd": str(LIMIT)}]},
    )
    return HardenedGateway(config)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("max_tokens", [1000, None])
async def test_a_burst_of_32_long_answers_stays_within_a_hard_budget(
    faults: FaultUpstream, tmp_path: Path, stream: bool, max_tokens: int | None
) -> None:
    """Each answer is 1,000 tokens (~$0.01): the old cold-start estimate (256 tokens) let
    about 19 of 32 through a $0.05 budget (~+280%)."""
    model = "burst-ans1000"
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if max_tokens:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    with _gateway(faults, tmp_path, model) as gw:
        statuses = await _burst(gw, body)
        spent, ok = _spent(gw)
    assert set(statuses) <= {200, 429}
    assert ok >= 1
    assert spent <= LIMIT, f"spent {spent} of {LIMIT} ({ok} answered)"


async def test_a_stream_past_max_tokens_is_cut_at_the_hard_budget(
    faults: FaultUpstream, tmp_path: Path
) -> None:
    """The upstream ignores max_tokens=1000 and streams 3,000 tokens: the old estimate let the
    burst spend +563%; now each stream past its worst case holds more of the budget as it goes
    and is cut, with an error event, when the budget cannot cover it. Bound: the limit plus
    one upstream read (here a 20-token chunk) per such stream."""
    model = "burst-ignore-fastdrip-ans3000"
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1000,
        "stream": True,
    }
    with _gateway(faults, tmp_path, model) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=60) as client:

            async def one() -> bytes:
                async with client.stream("POST", "/v1/chat/completions", json=body) as r:
                    return await r.aread()

            answers = await asyncio.gather(*[one() for _ in range(32)])
        spent, _ = _spent(gw)
    cut = [a for a in answers if b"passed its hard budget" in a]
    assert cut, "no stream was cut"
    assert all(b'"error"' in a.split(b"\n\n")[-3] or b"[DONE]" not in a for a in cut)
    streams = sum(1 for a in answers if a.startswith(b"data:"))
    assert spent <= LIMIT + streams * 2 * CHUNK_COST, f"spent {spent}, {streams} streams"
