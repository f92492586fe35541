"""``ResponseCache``: the response cache on the request path, in two calls.

    look = await cache.before(chat, record, key_id, headers)   # after admission
    if look.hit: ... answer look.hit (or look.replay() for a stream); the record is emitted
    else: response = engine...; look.store(response)  /  stream = look.tee(stream)

A hit is a ledger row like any request: status ok, no attempts, ``cost_usd`` 0, ``saved_usd``
what the answer cost when it was made, ``decision.cache`` = ``{"hit": "exact" | "semantic",
"from": <request id that made it>, "similarity": ...}``. It comes after admission, so allowed
models, rate limits and budgets apply to it as to any request (its budget reservation is
settled at 0). A streamed request is answered from the cache as a stream (one batch of
deltas), whichever way the answer was first made; a streamed answer is stored once it has
ended normally. Storing runs in a task: the client does not wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping
from decimal import Decimal
from typing import Any

import orjson

from modelmix.cache import semantic
from modelmix.cache.config import CacheConfig
from modelmix.cache.request_key import HEADER, cacheable, context_key, request_key
from modelmix.cache.stores import CacheStore, MemoryCacheStore, RedisCacheStore
from modelmix.engine import EngineStream, finish_record
from modelmix.ledger.records import RequestRecord
from modelmix.types import ChatRequest, ChatResponse, StreamDelta, ToolCall, ToolCallDelta, Usage

__all__ = ["CacheLook", "ResponseCache"]


def encode(response: ChatResponse, record: RequestRecord) -> bytes:
    return orjson.dumps(
        {
            "id": response.id,
            "model": response.model,
            "content": response.content,
            "tool_calls": [[t.id, t.name, t.arguments] for t in response.tool_calls],
            "finish_reason": response.finish_reason,
            "usage": [response.usage.prompt_tokens, response.usage.completion_tokens],
            "created": response.created,
            "system_fingerprint": response.system_fingerprint,
            "cost_usd": format(record.cost_usd, "f"),
            "final_model": record.final_model,
            "route": record.route,
            "request_id": record.id,
        }
    )


def decode(raw: bytes) -> tuple[ChatResponse, dict[str, Any]]:
    d = orjson.loads(raw)
    response = ChatResponse(
        id=d["id"],
        model=d["model"],
        content=d["content"],
        tool_calls=[ToolCall(*t) for t in d["tool_calls"]],
        finish_reason=d["finish_reason"],
        usage=Usage(*d["usage"]),
        created=d["created"],
        system_fingerprint=d["system_fingerprint"],
    )
    return response, d


class ResponseCache:
    """See the module docstring. ``emit`` records a finished request (``Gateway.emit``)."""

    def __init__(
        self, settings: CacheConfig, store: CacheStore, emit: Callable[[RequestRecord], None]
    ) -> None:
        self.settings = settings
        self.store = store
        self.emit = emit
        self.semantic_routes = frozenset(settings.semantic.routes)
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    def build(
        cls,
        settings: CacheConfig,
        redis_url: str | None,
        prefix: str,
        timeout: float,
        emit: Callable[[RequestRecord], None],
    ) -> ResponseCache:
        recent = settings.semantic.recent
        use_redis = settings.backend == "redis" or (settings.backend == "auto" and redis_url)
        store: CacheStore
        if use_redis:
            if not redis_url:
                raise ValueError("cache.backend: redis needs state.redis_url")
            store = RedisCacheStore(
                redis_url, prefix, settings.ttl, settings.max_bytes, recent, timeout
            )
        else:
            store = MemoryCacheStore(settings.ttl, settings.max_bytes, recent)
        return cls(settings, store, emit)

    async def before(
        self,
        request: ChatRequest,
        record: RequestRecord,
        key_id: str | None,
        headers: Mapping[str, str],
    ) -> CacheLook | None:
        """Look the request up (None: not cacheable). On a hit the record is finished and
        emitted; the caller answers ``look.hit``."""
        if not cacheable(request, self.settings.any_temperature, headers.get(HEADER)):
            return None
        scope = key_id if self.settings.scope == "key" else None
        look = CacheLook(self, request, request_key(request, scope))
        raw = await self.store.get(look.key)
        kind, score = "exact", None
        if raw is None and request.model in self.semantic_routes:
            look.bucket = context_key(request, scope)
            look.vector = semantic.prompt_vector(request)
            items = await self.store.recent(look.bucket)
            match = semantic.best_match(look.vector, items, self.settings.semantic.threshold)
            if match is not None:
                raw = await self.store.get(match[0])
                kind, score = "semantic", match[1]
        if raw is not None:
            look.hit, entry = decode(raw)
            record.final_model = entry["final_model"]
            record.route = entry["route"]
            record.saved_usd = Decimal(entry["cost_usd"])
            record.decision["cache"] = {"hit": kind, "from": entry["request_id"]}
            if score is not None:
                record.decision["cache"]["similarity"] = round(score, 4)
            finish_record(record)
            self.emit(record)
        return look

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _put(self, look: CacheLook, value: bytes) -> None:
        await self.store.put(look.key, value)
        if look.vector is not None and look.bucket is not None:
            await self.store.remember(look.bucket, semantic.item(look.vector, look.key))

    def keep(self, look: CacheLook, response: ChatResponse, record: RequestRecord) -> None:
        if record.status != "ok" or record.http_status != 200:
            return
        value = encode(response, record)
        if len(value) <= self.settings.max_entry_bytes:
            self._spawn(self._put(look, value))

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.close()


class CacheLook:
    """One cacheable request's look-up: its keys, and the answer when it was a hit."""

    __slots__ = ("bucket", "cache", "hit", "key", "request", "vector")

    def __init__(self, cache: ResponseCache, request: ChatRequest, key: str) -> None:
        self.cache = cache
        self.request = request
        self.key = key
        self.hit: ChatResponse | None = None
        self.bucket: str | None = None
        self.vector: semantic.Vector | None = None

    def store(self, response: ChatResponse, record: RequestRecord) -> None:
        """A fresh non-streamed answer: keep it (in a task)."""
        self.cache.keep(self, response, record)

    def replay(self, record: RequestRecord) -> EngineStream:
        """The hit as a stream."""
        assert self.hit is not None
        return _Replay(record, self.hit)

    def tee(self, stream: EngineStream) -> EngineStream:
        """A fresh stream, kept once it has ended normally."""
        return _Tee(self, stream)


def _deltas(response: ChatResponse) -> list[StreamDelta]:
    out = [StreamDelta(content=response.content or None, id=response.id, model=response.model)]
    if response.tool_calls:
        out.append(
            StreamDelta(
                tool_calls=[
                    ToolCallDelta(i, t.id, t.name, t.arguments)
                    for i, t in enumerate(response.tool_calls)
                ]
            )
        )
    out.append(StreamDelta(finish_reason=response.finish_reason, usage=response.usage))
    return out


class _Replay(EngineStream):
    """A cached answer as one batch of deltas (the record was emitted at the look-up)."""

    def __init__(self, record: RequestRecord, response: ChatResponse) -> None:  # no super()
        self.record = record
        self.model = record.final_model or response.model
        self.response = response
        self.usage = response.usage
        self._done = False

    @property
    def at_end(self) -> bool:
        return self._done

    async def batches(self) -> AsyncGenerator[list[StreamDelta], None]:
        self._done = True
        yield _deltas(self.response)


class _Tee(EngineStream):
    """An engine stream passed through unchanged, its answer gathered to be kept."""

    def __init__(self, look: CacheLook, inner: EngineStream) -> None:  # no super()
        self.look = look
        self.inner = inner
        self.record = inner.record
        self.model = inner.model
        self.request = inner.request

    @property
    def at_end(self) -> bool:
        return self.inner.at_end

    async def batches(self) -> AsyncGenerator[list[StreamDelta], None]:
        text: list[str] = []
        calls: dict[int, list[str]] = {}
        last = StreamDelta()
        async with contextlib.aclosing(self.inner.batches()) as batches:
            async for batch in batches:
                for d in batch:
                    if d.content:
                        text.append(d.content)
                    for t in d.tool_calls or ():
                        call = calls.setdefault(t.index, ["", "", ""])
                        call[0] = t.id or call[0]
                        call[1] = t.name or call[1]
                        call[2] += t.arguments
                    last.id = d.id or last.id
                    last.model = d.model or last.model
                    last.finish_reason = d.finish_reason or last.finish_reason
                yield batch
        response = ChatResponse(
            id=last.id or self.record.id,
            model=last.model or self.model,
            content="".join(text) if text else None,
            tool_calls=[ToolCall(*calls[i]) for i in sorted(calls)],
            finish_reason=last.finish_reason or "stop",
            usage=self.inner.usage or Usage(),
        )
        self.look.cache.keep(self.look, response, self.record)
