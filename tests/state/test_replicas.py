"""Two or three ``modelmix serve`` replicas sharing one real Redis, driven by the real openai
SDK at concurrency 32: one hard budget and one rate limit for all of them, and a Redis restart
in the middle of the load under each ``state.on_unavailable`` policy."""

from __future__ import annotations

import asyncio
import http.client
import math
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from tests.state.redis_server import RedisServer
from tests.state.replicas import ADMIN, CLI, Replicas, env, get, load, load_until

LIMIT = Decimal("0.01")


def test_hard_budget_shared_by_three_replicas(tmp_path: Path, redis_server: RedisServer) -> None:
    replicas = Replicas(
        tmp_path,
        3,
        {
            "state": {"redis_url": redis_server.url},
            "budgets": {"global": [{"kind": "hard", "period": "total", "limit_usd": str(LIMIT)}]},
        },
        [],
    )
    replicas.start()
    try:
        outcomes = asyncio.run(load(replicas, 128))
        # every replica reads the one counter: the same spend, whichever one answers
        seen = {
            orjson.loads(get(port, "/admin/budgets")[1])["data"][0]["spent_usd"]
            for port in replicas.ports
        }
        assert len(seen) == 1
    finally:
        replicas.stop()
    rows = replicas.rows()
    admitted = outcomes.count(200)
    assert set(outcomes) == {200, "429:budget_exceeded"}
    assert len(rows) == 128 and sum(r["status"] == "ok" for r in rows) == admitted
    spent = sum(Decimal(r["cost_usd"]) for r in rows)
    # One host's bound (tests/e2e/test_serve_workers_budget.py): the simulator answers within
    # max_tokens and the estimate counts the prompt high, so no admitted call costs more than
    # it reserved and nothing in flight can push spend past the limit. Three replicas: same.
    assert spent <= LIMIT
    per_call = spent / admitted
    assert spent > LIMIT - 3 * per_call  # the budget was used, not refused early
    assert {(r["key_id"]) for r in rows} == {replicas.key["id"]}
    print(f"3 replicas: admitted {admitted} of 128, spent {spent} of {LIMIT}")


def test_without_redis_each_replica_spends_the_whole_budget(tmp_path: Path) -> None:
    """The control for the test above: the same load on the same three replicas without
    ``state.redis_url`` (each with its own counters) overspends, so the test above is the one
    that shows the sharing."""
    replicas = Replicas(
        tmp_path,
        3,
        {"budgets": {"global": [{"kind": "hard", "period": "total", "limit_usd": str(LIMIT)}]}},
        [],
    )
    replicas.start()
    try:
        asyncio.run(load(replicas, 128))
    finally:
        replicas.stop()
    spent = sum(Decimal(r["cost_usd"]) for r in replicas.rows())
    assert spent > 2 * LIMIT  # each replica spent up to the limit on its own
    print(f"3 replicas without Redis: spent {spent} of {LIMIT}")


def test_rate_limit_holds_across_replicas(tmp_path: Path, redis_server: RedisServer) -> None:
    rpm = 20
    replicas = Replicas(
        tmp_path,
        3,
        {"state": {"redis_url": redis_server.url}},
        ["--rpm", str(rpm)],
    )
    replicas.start()
    try:
        started = time.monotonic()
        outcomes = asyncio.run(load(replicas, 90))
        elapsed = time.monotonic() - started
    finally:
        replicas.stop()
    ok = outcomes.count(200)
    assert set(outcomes) == {200, "429:rate_limit_exceeded"}
    # one bucket of 20 for the key, refilling 20/min while the load ran; without Redis each
    # replica would have its own bucket and admit up to 60
    assert rpm <= ok <= rpm + math.ceil(elapsed * rpm / 60)


def test_model_rate_limit_holds_across_replicas(tmp_path: Path, redis_server: RedisServer) -> None:
    """A per-model limit (shared by every key) in Redis, taken by each replica's engine on the
    event loop (``Admission.admit_model_async``): one bucket for the model, not one per
    replica; past it the model's own 429."""
    rpm = 15
    replicas = Replicas(
        tmp_path,
        2,
        {
            "state": {"redis_url": redis_server.url},
            "budgets": {"rate_limits": {"models": {"sim-small": {"rpm": rpm}}}},
        },
        [],
    )
    replicas.start()
    try:
        started = time.monotonic()
        outcomes = asyncio.run(load(replicas, 60))
        elapsed = time.monotonic() - started
    finally:
        replicas.stop()
    ok = outcomes.count(200)
    assert set(outcomes) == {200, "429:rate_limit_exceeded"}, set(outcomes)
    assert rpm <= ok <= rpm + math.ceil(elapsed * rpm / 60)


@pytest.mark.parametrize("policy", ["fail_closed", "fail_open"])
def test_redis_restart_mid_load(tmp_path: Path, redis_server: RedisServer, policy: str) -> None:
    replicas = Replicas(
        tmp_path,
        2,
        {
            "state": {"redis_url": redis_server.url, "on_unavailable": policy, "timeout": 0.2},
            "budgets": {"global": [{"kind": "hard", "period": "total", "limit_usd": "1000"}]},
        },
        ["--rpm", "100000"],
    )
    replicas.start()
    try:

        async def scenario() -> tuple[list[int | str], list[int | str], list[int], list[int]]:
            stop = asyncio.Event()
            running = asyncio.ensure_future(load_until(replicas, stop))
            await asyncio.sleep(0.5)
            redis_server.stop()
            await asyncio.sleep(1.0)
            during = await load(replicas, 64)
            # off the loop: a blocking call would leave the load's keep-alive connections idle
            # long enough for the server to close them under the clients
            ready_down = [(await asyncio.to_thread(get, p, "/ready"))[0] for p in replicas.ports]
            redis_server.start()
            deadline = time.monotonic() + 15

            async def statuses() -> list[int]:
                return [(await asyncio.to_thread(get, p, "/ready"))[0] for p in replicas.ports]

            while any(status != 200 for status in await statuses()):
                assert time.monotonic() < deadline, "replicas did not become ready again"
                await asyncio.sleep(0.1)
            ready_up = await statuses()
            await asyncio.sleep(0.5)  # the load goes on past the recovery
            stop.set()
            mixed = await running
            return mixed, during, ready_down, ready_up

        mixed, during, ready_down, ready_up = asyncio.run(scenario())
        await_after = asyncio.run(load(replicas, 64))
        metrics = get(replicas.ports[0], "/metrics")[1].decode()
    finally:
        replicas.stop()
    assert ready_up == [200, 200]
    assert await_after == [200] * 64  # recovered: Redis is used again
    rows = replicas.rows()
    local = [r for r in rows if orjson.loads(r["decision"]).get("shared_state") == "local"]
    if policy == "fail_closed":
        assert set(during) == {"503:shared_state_unavailable"}
        assert ready_down == [503, 503]
        assert "503:shared_state_unavailable" in mixed and 200 in mixed
        assert not local
        assert "modelmix_shared_state_local_admissions_total 0.0" in metrics
    else:
        assert during == [200] * 64  # counted on each replica alone meanwhile
        assert ready_down == [200, 200]
        assert set(mixed) == {200}
        assert len(local) >= 64
        assert "modelmix_shared_state_local_admissions_total 0.0" not in metrics
    assert "modelmix_shared_state_up 1.0" in metrics
    assert "modelmix_shared_state_outages_total 1.0" in metrics
    # the requests after the recovery were counted in Redis again, not locally
    assert all(
        orjson.loads(r["decision"]).get("shared_state") is None
        for r in sorted(rows, key=lambda r: r["started_at"])[-64:]
    )


def test_revocation_reaches_every_replica_at_once(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """Each replica has its own ledger here: only Redis can tell replica 2 about a key revoked
    on replica 1 (by its admin API, or by `modelmix keys revoke` on its config)."""
    replicas = Replicas(tmp_path, 2, {"state": {"redis_url": redis_server.url}}, [], n_keys=2)
    replicas.start()
    try:
        first, second = replicas.keys
        assert asyncio.run(load(replicas, 4, key=first["key"])) == [200] * 4
        assert asyncio.run(load(replicas, 4, key=second["key"])) == [200] * 4
        conn = http.client.HTTPConnection("127.0.0.1", replicas.ports[0], timeout=10)
        conn.request(
            "POST",
            f"/admin/keys/{first['id']}/revoke",
            headers={"authorization": f"Bearer {ADMIN}"},
        )
        assert conn.getresponse().status == 200
        conn.close()
        subprocess.run(
            [*CLI, "keys", "revoke", second["id"], "--config", str(replicas.configs[0])],
            env=env(),
            check=True,
            capture_output=True,
        )
        for key in (first, second):
            outcomes = _until_refused(replicas, key["key"])
            assert outcomes == ["401:invalid_api_key"] * 4
    finally:
        replicas.stop()


def _until_refused(replicas: Replicas, key: str) -> list[int | str]:
    """The pub/sub message arrives within milliseconds; 2 s is far below the 5 s key cache
    (and replica 2's own ledger never learns of the revocation)."""
    deadline = time.monotonic() + 2.0
    while True:
        outcomes = asyncio.run(load(replicas, 4, key=key))
        if 200 not in outcomes or time.monotonic() > deadline:
            return outcomes
        time.sleep(0.05)
