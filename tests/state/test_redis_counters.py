"""The Redis counters' Lua scripts against a real redis-server: semantics, several replicas
(one ``RedisLink`` each) racing from many threads, and the two outage policies."""

from __future__ import annotations

import asyncio
import threading
import time
from decimal import Decimal

import pytest

from modelmix.budgets.errors import RateLimited
from modelmix.budgets.limits import RateLimit, RateLimiter
from modelmix.budgets.store import MISSING, CounterKey
from modelmix.state.config import StateConfig
from modelmix.state.link import RedisLink, StateUnavailable
from modelmix.state.redis_counters import RedisBucketStore, RedisSpendStore
from tests.state.redis_server import RedisServer

KEY: CounterKey = ("global", "*", 0.0, float("inf"))
_SOON = float(int(time.time())) + 3600.0  # a window ending in an hour (plus the test's run)
TEAM: CounterKey = ("team", "a:b", _SOON - 7200.0, _SOON)


def _link(server: RedisServer, policy: str = "fail_closed") -> RedisLink:
    return RedisLink(
        StateConfig(redis_url=server.url, on_unavailable=policy, timeout=0.3, probe_interval=0.05)  # type: ignore[arg-type]
    )


def _wait(cond: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_reserve_settle_seed(redis_server: RedisServer) -> None:
    link = _link(redis_server)
    store = RedisSpendStore(link)
    try:
        assert store.reserve_seen([KEY], [(KEY, Decimal(1))], Decimal("0.3")) == (MISSING, None)
        store.seed(KEY, Decimal("0.5"))
        store.seed(KEY, Decimal("0.9"))  # a second seed keeps the first value
        assert store.has(KEY) and not store.has(TEAM)
        failed, seen = store.reserve_seen([KEY], [(KEY, Decimal(1))], Decimal("0.3"))
        assert failed is None and seen == [(Decimal("0.5"), Decimal(0))]
        failed, seen = store.reserve_seen([KEY], [(KEY, Decimal(1))], Decimal("0.3"))
        assert failed == 0 and seen == [(Decimal("0.5"), Decimal("0.3"))]  # 1.1 > 1: refused
        store.settle([KEY], Decimal("0.3"), Decimal("0.25"))
        assert link.flush()
        assert store.get(KEY) == (Decimal("0.75"), Decimal(0))
        # several counters, the second one checked: all or nothing
        store.seed(TEAM, Decimal(0))
        failed, _ = store.reserve_seen([KEY, TEAM], [(TEAM, Decimal("0.1"))], Decimal("0.2"))
        assert failed == 0
        assert store.peek([KEY, TEAM]) == [(Decimal("0.75"), Decimal(0)), (Decimal(0), Decimal(0))]
        # a window's counter expires a week after its end; a total one never does
        client = redis_server.client()
        assert client.ttl(store.name(KEY)) == -1
        assert 7 * 86400 < client.ttl(store.name(TEAM)) <= 7 * 86400 + 3600
        client.close()
    finally:
        link.close()


def test_replicas_racing_never_overspend(redis_server: RedisServer) -> None:
    """3 replicas x 8 threads reserve 0.01 against a cap of 1.00 as fast as they can."""
    links = [_link(redis_server) for _ in range(3)]
    stores = [RedisSpendStore(link) for link in links]
    stores[0].seed(KEY, Decimal(0))
    cap = Decimal("1.00")
    step = Decimal("0.01")
    admitted = [0] * 24
    peak = [Decimal(0)] * 24

    def worker(i: int) -> None:
        store = stores[i % 3]
        for _ in range(40):
            keys = [KEY]
            failed, seen = store.reserve_seen(keys, [(KEY, cap)], step)
            assert seen is not None
            peak[i] = max(peak[i], seen[0][0] + seen[0][1])
            if failed is None:
                admitted[i] += 1
                store.settle(keys, step, step)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for link in links:
        assert link.flush()
    assert sum(admitted) == 100  # exactly the cap, never one more
    assert max(peak) <= cap
    assert stores[1].get(KEY) == (cap, Decimal(0))
    for link in links:
        link.close()


def test_rate_buckets_shared_by_replicas(redis_server: RedisServer) -> None:
    links = [_link(redis_server) for _ in range(2)]
    stores = [RedisBucketStore(link) for link in links]
    key = ("key", "k1", "requests")
    taken = 0
    for i in range(30):
        wait, levels = stores[i % 2].take([(key, 10.0, 1.0)], 0.0)
        if wait == 0.0:
            taken += 1
        else:
            assert 0.0 < wait <= 6.01 and levels[0] < 1.0
    assert taken == 10  # one bucket of 10 per minute, not one per replica
    stores[0].give(key, 3.0, 0.0)
    assert links[0].flush()
    wait, _ = stores[1].take([(key, 10.0, 3.0)], 0.0)
    assert wait == 0.0
    for link in links:
        link.close()


def test_fail_closed_refuses_then_recovers(redis_server: RedisServer) -> None:
    link = _link(redis_server, "fail_closed")
    store = RedisSpendStore(link)
    try:
        store.seed(KEY, Decimal(0))
        redis_server.stop()
        with pytest.raises(StateUnavailable) as err:
            store.reserve_seen([KEY], [(KEY, Decimal(1))], Decimal("0.1"))
        assert err.value.status == 503 and not link.up
        assert link.problems() == ["shared state (Redis) is unreachable"]
        with pytest.raises(StateUnavailable):  # no Redis call while down: refused at once
            store.reserve_seen([KEY], [(KEY, Decimal(1))], Decimal("0.1"))
        redis_server.start()
        _wait(lambda: link.up)
        assert store.reserve_seen([KEY], [(KEY, Decimal(1))], Decimal("0.1")) == (MISSING, None)
    finally:
        link.close()


def test_fail_open_counts_locally_and_replays_spend(redis_server: RedisServer) -> None:
    """An outage without data loss (the server paused): the spend of requests admitted on the
    local counters and the settlements queued meanwhile reach Redis once it answers."""
    link = _link(redis_server, "fail_open")
    store = RedisSpendStore(link)
    admin = redis_server.client()
    try:
        store.seed(KEY, Decimal(0))
        before = [KEY]
        assert store.reserve_seen(before, [(KEY, Decimal(1))], Decimal("0.2"))[0] is None
        admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        local = [KEY]
        failed, seen = store.reserve_seen(local, [(KEY, Decimal(1))], Decimal("0.1"))
        assert not link.up
        assert (failed, seen) == (MISSING, None)  # local counters start empty: seed them
        store.seed(KEY, Decimal(0))
        assert store.reserve_seen(local, [(KEY, Decimal(1))], Decimal("0.1"))[0] is None
        store.settle(local, Decimal("0.1"), Decimal("0.05"))
        store.settle(before, Decimal("0.2"), Decimal("0.15"))
        assert link.local_spend.get(KEY) == (Decimal("0.05"), Decimal(0))
        assert link.pending >= 1
        _wait(lambda: link.up)
        assert link.flush()
        # Redis: 0.15 settled (its 0.2 released) + the outage's 0.05 spent locally
        assert store.get(KEY) == (Decimal("0.2"), Decimal(0))
    finally:
        admin.close()
        link.close()


# -- the event loop's path (state/resp.py): awaited reservations, settlements sent on the loop


def test_async_replicas_racing_never_overspend(redis_server: RedisServer) -> None:
    """3 replicas (one link and one loop connection each) x 300 concurrent reservations of
    0.01 against a cap of 1.00, settled on the loop's connection as they are admitted."""
    links = [_link(redis_server) for _ in range(3)]
    stores = [RedisSpendStore(link) for link in links]
    stores[0].seed(KEY, Decimal(0))
    cap, step = Decimal("1.00"), Decimal("0.01")

    async def one(i: int) -> tuple[bool, Decimal]:
        keys = [KEY]
        failed, seen = await stores[i % 3].reserve_seen_async(keys, [(KEY, cap)], step)
        assert seen is not None
        if failed is None:
            stores[i % 3].settle(keys, step, step)
        return failed is None, seen[0][0] + seen[0][1]

    async def main() -> list[tuple[bool, Decimal]]:
        out = await asyncio.gather(*(one(i) for i in range(300)))
        for link in links:  # settlements went on the loop's connections, not the thread
            assert link.pending == 0
        for _ in range(200):
            if all(link.aio(asyncio.get_running_loop()).unanswered == 0 for link in links):
                break
            await asyncio.sleep(0.01)
        return out

    try:
        results = asyncio.run(main())
        assert sum(ok for ok, _ in results) == 100  # exactly the cap, never one more
        assert max(peak for _, peak in results) <= cap
        assert stores[1].get(KEY) == (cap, Decimal(0))
    finally:
        for link in links:
            link.close()


def test_async_rate_buckets_shared_by_replicas(redis_server: RedisServer) -> None:
    links = [_link(redis_server) for _ in range(2)]
    stores = [RedisBucketStore(link) for link in links]
    key = ("key", "k2", "requests")

    async def main() -> list[tuple[float, list[float]]]:
        return await asyncio.gather(
            *(stores[i % 2].take_async([(key, 10.0, 1.0)], 0.0) for i in range(30))
        )

    try:
        taken = [wait == 0.0 for wait, _ in asyncio.run(main())]
        assert sum(taken) == 10  # one bucket of 10 per minute, not one per replica
    finally:
        for link in links:
            link.close()


def test_async_fail_closed_refuses_then_recovers(redis_server: RedisServer) -> None:
    link = _link(redis_server, "fail_closed")
    store = RedisSpendStore(link)

    async def reserve() -> tuple[int | None, object]:
        return await store.reserve_seen_async([KEY], [(KEY, Decimal(1))], Decimal("0.1"))

    try:
        store.seed(KEY, Decimal(0))
        assert asyncio.run(reserve())[0] is None
        redis_server.stop()
        with pytest.raises(StateUnavailable) as err:
            asyncio.run(reserve())
        assert err.value.status == 503 and not link.up
        with pytest.raises(StateUnavailable):  # no Redis call while down: refused at once
            asyncio.run(reserve())
        redis_server.start()
        _wait(lambda: link.up)
        assert asyncio.run(reserve()) == (MISSING, None)  # Redis came back empty
    finally:
        link.close()


def test_async_fail_open_counts_locally_then_goes_back(redis_server: RedisServer) -> None:
    """Redis restarted under load on one loop: reservations go on the local counters while it
    is down, the settlements whose connection was lost are sent again by the writer thread,
    and the loop's connection is used again once Redis answers."""
    link = _link(redis_server, "fail_open")
    store = RedisSpendStore(link)

    async def main() -> None:
        store.seed(KEY, Decimal(0))
        keys = [KEY]
        assert (await store.reserve_seen_async(keys, [(KEY, Decimal(1))], Decimal("0.2")))[
            0
        ] is None
        redis_server.stop()
        local = [KEY]
        failed, _ = await store.reserve_seen_async(local, [(KEY, Decimal(1))], Decimal("0.1"))
        assert failed == MISSING and not link.up  # the local counters start empty
        store.seed(KEY, Decimal(0))
        assert (await store.reserve_seen_async(local, [(KEY, Decimal(1))], Decimal("0.1")))[
            0
        ] is None
        store.settle(local, Decimal("0.1"), Decimal("0.05"))
        store.settle(keys, Decimal("0.2"), Decimal("0.15"))  # made in Redis: queued for it
        assert link.local_spend.get(KEY) == (Decimal("0.05"), Decimal(0))
        assert link.pending == 2  # down: both wait for the writer thread
        redis_server.start()
        for _ in range(500):
            if link.up:
                break
            await asyncio.sleep(0.02)
        assert link.up and link.flush()
        # the queued settlements were sent (none lost) to a Redis that lost the counter: it
        # is seeded again from the ledger (here: by hand), not rebuilt from settlements
        assert not store.has(KEY)
        store.seed(KEY, Decimal("0.2"))
        failed, seen = await store.reserve_seen_async([KEY], [(KEY, Decimal(1))], Decimal("0.1"))
        assert failed is None and seen is not None and link.up  # the loop's connection again

    try:
        asyncio.run(main())
    finally:
        link.close()


def test_async_limiters_share_key_and_model_limits(redis_server: RedisServer) -> None:
    """Two replicas' ``RateLimiter``s on Redis, awaited: a key's rpm and a model's rpm hold
    across both (429 past them, with the headers), as on one host."""
    links = [_link(redis_server) for _ in range(2)]
    limiters = [
        RateLimiter({"m": RateLimit(rpm=4)}, store=RedisBucketStore(link)) for link in links
    ]
    key_limit = RateLimit(rpm=6)

    async def main() -> tuple[int, int, list[float | None]]:
        admitted = refused = 0
        for i in range(10):
            try:
                state = await limiters[i % 2].acquire_async("k3", key_limit, 1)
            except RateLimited as err:
                refused += 1
                assert err.headers["x-ratelimit-remaining-requests"] == "0"
            else:
                admitted += 1
                assert state.limit_requests == 6
        waits = [await limiters[i % 2].acquire_model_async("m", 1) for i in range(7)]
        assert await limiters[0].acquire_model_async("other", 1) is None  # no limit of its own
        return admitted, refused, waits

    try:
        admitted, refused, waits = asyncio.run(main())
        assert (admitted, refused) == (6, 4)
        assert waits[:4] == [None] * 4 and all(w is not None and w > 0 for w in waits[4:])
    finally:
        for link in links:
            link.close()
