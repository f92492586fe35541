"""Where cache entries live: ``MemoryCacheStore`` (one process) or ``RedisCacheStore`` (every
replica). Both keep an entry ``ttl`` seconds and at most ``max_bytes`` in all; both also keep,
per *bucket*, the recent prompts the semantic look-up compares (``recent`` / ``remember``).

Memory: an ``OrderedDict`` in least-recently-used order; a put evicts from the old end until
the total fits. Redis: ``SET ... PX ttl`` plus an index (a sorted set by insertion time and a
hash of sizes) that one Lua script keeps under ``max_bytes``, evicting oldest first (FIFO: a
hit does not refresh an entry, which would cost a write per hit). Every cache key carries the
``{prefix}`` hash tag, so on a Redis Cluster they all live on one slot and the script is legal.

A cache that cannot reach Redis is a miss, never an error: the request goes to the engine;
after a failure the store does not try Redis again for ``_RETRY_AFTER`` seconds, so an outage
costs requests no timeout each.
"""

from __future__ import annotations

import collections
import logging
import time
from typing import Any, Protocol

import redis
import redis.asyncio as aioredis

__all__ = ["CacheStore", "MemoryCacheStore", "RedisCacheStore"]

log = logging.getLogger("modelmix.cache")

#: Buckets of recent prompts kept in memory (least recently used dropped first).
_MAX_BUCKETS = 4096
#: Seconds without trying Redis after it failed.
_RETRY_AFTER = 1.0

_PUT = """
local t = redis.call('TIME')
-- microseconds (exact in a double): puts within one millisecond keep their order
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ttl = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - ttl * 1000, 'LIMIT', 0, 512)
for _, k in ipairs(expired) do
  redis.call('DECRBY', KEYS[4], tonumber(redis.call('HGET', KEYS[3], k) or 0))
  redis.call('HDEL', KEYS[3], k)
  redis.call('ZREM', KEYS[2], k)
end
local previous = redis.call('HGET', KEYS[3], KEYS[1])
if previous then redis.call('DECRBY', KEYS[4], previous) end
local size = string.len(ARGV[1])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('HSET', KEYS[3], KEYS[1], size)
local total = redis.call('INCRBY', KEYS[4], size)
while total > tonumber(ARGV[3]) do
  local oldest = redis.call('ZRANGE', KEYS[2], 0, 0)
  if #oldest == 0 then break end
  local k = oldest[1]
  total = redis.call('DECRBY', KEYS[4], tonumber(redis.call('HGET', KEYS[3], k) or 0))
  redis.call('ZREM', KEYS[2], k)
  redis.call('HDEL', KEYS[3], k)
  redis.call('DEL', k)
end
return total
"""


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def recent(self, bucket: str) -> list[bytes]:
        """The bucket's remembered items, newest first."""
        ...

    async def remember(self, bucket: str, item: bytes) -> None: ...

    async def close(self) -> None: ...


class MemoryCacheStore:
    """This process's cache; see the module docstring."""

    def __init__(self, ttl: float, max_bytes: int, recent: int, clock: Any = time.monotonic):
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.keep = recent
        self.clock = clock
        self.bytes = 0
        self._entries: collections.OrderedDict[str, tuple[float, bytes]] = collections.OrderedDict()
        self._buckets: collections.OrderedDict[str, collections.deque[tuple[float, bytes]]] = (
            collections.OrderedDict()
        )

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        if found[0] <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return found[1]

    def _drop(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.bytes -= len(value)

    async def put(self, key: str, value: bytes) -> None:
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self.clock() + self.ttl, value)
        self.bytes += len(value)
        while self.bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))

    async def recent(self, bucket: str) -> list[bytes]:
        items = self._buckets.get(bucket)
        if items is None:
            return []
        now = self.clock()
        return [item for expires, item in reversed(items) if expires > now]

    async def remember(self, bucket: str, item: bytes) -> None:
        items = self._buckets.get(bucket)
        if items is None:
            items = self._buckets[bucket] = collections.deque(maxlen=self.keep)
            if len(self._buckets) > _MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(bucket)
        items.append((self.clock() + self.ttl, item))

    async def close(self) -> None:
        self._entries.clear()
        self._buckets.clear()


class RedisCacheStore:
    """The cache in Redis, shared by replicas; see the module docstring."""

    def __init__(
        self, url: str, prefix: str, ttl: float, max_bytes: int, recent: int, timeout: float
    ) -> None:
        self.client = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        tag = "{" + prefix + "}"
        self.prefix = f"{tag}:cache"
        self.ttl_ms = max(int(ttl * 1000), 1)
        self.max_bytes = max_bytes
        self.keep = recent
        self._index = [f"{self.prefix}:index", f"{self.prefix}:sizes", f"{self.prefix}:bytes"]
        self._put = self.client.register_script(_PUT)
        self._warned = 0.0
        self._down_until = 0.0

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        self._down_until = now + _RETRY_AFTER
        if now - self._warned > 30.0:  # once in a while, not per request
            self._warned = now
            log.warning("response cache: Redis unreachable (%s); serving without the cache", exc)

    async def get(self, key: str) -> bytes | None:
        if self.down:
            return None
        try:
            value = await self.client.get(f"{self.prefix}:e:{key}")
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes) -> None:
        if self.down:
            return
        try:
            await self._put(
                keys=[f"{self.prefix}:e:{key}", *self._index],
                args=[value, self.ttl_ms, self.max_bytes],
            )
        except redis.RedisError as exc:
            self._failed(exc)

    async def recent(self, bucket: str) -> list[bytes]:
        if self.down:
            return []
        try:
            items = await self.client.lrange(f"{self.prefix}:s:{bucket}", 0, -1)
        except redis.RedisError as exc:
            self._failed(exc)
            return []
        return [i for i in items if isinstance(i, bytes)]

    async def remember(self, bucket: str, item: bytes) -> None:
        name = f"{self.prefix}:s:{bucket}"
        if self.down:
            return
        try:
            pipe = self.client.pipeline(transaction=True)
            pipe.lpush(name, item)
            pipe.ltrim(name, 0, self.keep - 1)
            pipe.pexpire(name, self.ttl_ms)
            await pipe.execute()
        except redis.RedisError as exc:
            self._failed(exc)

    async def close(self) -> None:
        await self.client.aclose()
