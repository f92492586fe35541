"""Cache stores: the memory one (LRU, TTL, byte bound) with a fake clock, the Redis one against
a real redis-server (TTL, byte bound kept by its Lua script, semantic lists); request keys."""

from __future__ import annotations

import asyncio
import time

from modelmix.cache import semantic
from modelmix.cache.request_key import cacheable, context_key, request_key
from modelmix.cache.stores import MemoryCacheStore, RedisCacheStore
from modelmix.types import ChatRequest
from tests.state.redis_server import RedisServer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_store_ttl_lru_and_byte_bound() -> None:
    async def run() -> None:
        clock = Clock()
        store = MemoryCacheStore(ttl=10.0, max_bytes=100, recent=2, clock=clock)
        await store.put("a", b"x" * 40)
        await store.put("b", b"y" * 40)
        assert await store.get("a") == b"x" * 40  # a is now the most recently used
        await store.put("c", b"z" * 40)  # 120 > 100: the least recently used (b) goes
        assert await store.get("b") is None
        assert await store.get("a") is not None and await store.get("c") is not None
        assert store.bytes == 80
        clock.now += 10.5
        assert await store.get("a") is None and store.bytes == 40
        for i in range(3):
            await store.remember("bucket", b"%d" % i)
        assert await store.recent("bucket") == [b"2", b"1"]  # newest first, 2 kept
        clock.now += 11
        assert await store.recent("bucket") == []

    asyncio.run(run())


def test_redis_store_bound_ttl_and_lists(redis_server: RedisServer) -> None:
    async def run() -> None:
        store = RedisCacheStore(
            redis_server.url, "t", 3.0, 100, 2, 1.0
        )  # TTL 3 s: room for a slow machine
        await store.put("a", b"x" * 40)
        await store.put("b", b"y" * 40)
        await store.put("a", b"x" * 40)  # a replaced: counted once
        await store.put("c", b"z" * 40)  # 120 > 100: the oldest insertion (b) goes
        assert await store.get("b") is None
        assert await store.get("a") == b"x" * 40 and await store.get("c") == b"z" * 40
        total = await store.client.get("{t}:cache:bytes")
        assert int(total) == 80
        for i in range(3):
            await store.remember("bucket", b"%d" % i)
        assert await store.recent("bucket") == [b"2", b"1"]
        deadline = time.monotonic() + 10
        while await store.get("a") is not None:  # PX 3 s
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        await store.put("d", b"w" * 10)  # forgets the expired entries' sizes
        assert int(await store.client.get("{t}:cache:bytes")) == 10
        await store.close()

    asyncio.run(run())


def _req(**params: object) -> ChatRequest:
    return ChatRequest(
        model="m", messages=[{"role": "user", "content": "hi there"}], params=dict(params)
    )


def test_request_keys_and_cacheability() -> None:
    assert cacheable(_req(temperature=0), False, None)
    assert not cacheable(_req(), False, None)  # provider default temperature: 1
    assert not cacheable(_req(temperature=0.2), False, None)
    assert cacheable(_req(temperature=0.2), False, "force")
    assert cacheable(_req(temperature=0.2), True, None)
    assert not cacheable(_req(temperature=0), False, "skip")
    assert not cacheable(_req(temperature=0, n=2), True, None)
    # what does not change the answer does not change the key; what does, does
    assert request_key(_req(temperature=0, user="u1"), None) == request_key(
        _req(temperature=0, user="u2"), None
    )
    assert request_key(_req(temperature=0), "k1") != request_key(_req(temperature=0), "k2")
    assert request_key(_req(temperature=0), None) != request_key(_req(temperature=0.5), None)
    # fields modelmix does not know, top-level or nested, may change the answer: part of the key
    plain = _req(temperature=0)
    knob = _req(temperature=0)
    knob.unknown = {"vendor_knob": 1}
    other = _req(temperature=0)
    other.unknown = {"vendor_knob": 2}
    nested = _req(temperature=0)
    nested.unknown = {"messages.0.content.0.foo": 1}
    keys = {request_key(r, None) for r in (plain, knob, other, nested)}
    assert len(keys) == 4
    again = _req(temperature=0)
    again.unknown = {"vendor_knob": 1}
    assert request_key(again, None) == request_key(knob, None)
    assert context_key(_req(temperature=0), None) == context_key(
        ChatRequest(
            model="m", messages=[{"role": "user", "content": "other"}], params={"temperature": 0}
        ),
        None,
    )


def test_semantic_similarity_is_lexical() -> None:
    def vec(text: str) -> semantic.Vector:
        return semantic.prompt_vector(
            ChatRequest(model="m", messages=[{"role": "user", "content": text}])
        )

    a = vec("How do I reset my password on the support portal?")
    assert abs(semantic.similarity(a, a) - 1.0) < 1e-6
    near = semantic.similarity(a, vec("how do I reset my password on the support portal"))
    paraphrase = semantic.similarity(a, vec("I forgot my login secret; how can I get a new one?"))
    assert near > 0.9 > paraphrase
    items = [semantic.item(vec("unrelated words entirely"), "k1"), semantic.item(a, "k2")]
    assert semantic.best_match(a, items, 0.9) == ("k2", semantic.similarity(a, a))
    assert semantic.best_match(vec("nothing alike at all"), items, 0.9) is None
