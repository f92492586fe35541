"""Rate limits: requests and tokens per minute, per key and per model (token buckets).

Each limit is a token bucket holding at most one minute's allowance and refilling
continuously (``limit / 60`` per second): a key limited to 60 requests/minute may burst 60,
then gets one a second. A request takes 1 from the requests bucket and its *estimated* tokens
(prompt + predicted completion) from the tokens bucket, both or neither; once the real usage
is known, ``adjust`` corrects the tokens bucket (it may go negative: the debt is waited off).

Per request: a couple of look-ups and a little float arithmetic; no I/O. The buckets live in a
``BucketStore``: this process's memory (``InMemoryBucketStore``), or the counters file every
gateway process on the host maps (``shared.SharedBucketStore``, the gateway's default), so
``serve --workers N`` enforces one limit, not N.

The answers carry OpenAI's rate-limit headers, which clients and SDK users already read:
``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``,
``x-ratelimit-reset-requests`` (time until the bucket is full again, e.g. ``1s``, ``6m0s``)
and the same three for ``tokens``; a refusal adds ``retry-after`` (seconds).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from modelmix.budgets.errors import RateLimited

__all__ = [
    "BucketStore",
    "InMemoryBucketStore",
    "RateLimit",
    "RateLimiter",
    "RateState",
    "format_reset",
    "refill",
    "wait_for",
]


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Per-minute limits; None = unlimited."""

    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be a positive integer")

    @property
    def empty(self) -> bool:
        return self.rpm is None and self.tpm is None

    def to_dict(self) -> dict[str, int]:
        d: dict[str, int] = {}
        if self.rpm is not None:
            d["rpm"] = self.rpm
        if self.tpm is not None:
            d["tpm"] = self.tpm
        return d


BucketKey = tuple[str, str, str]  # (scope, name, "requests" | "tokens")


def refill(level: float, updated: float, old_capacity: float, capacity: float, now: float) -> float:
    """A bucket's level at ``now``: refilled at ``old_capacity`` per minute since ``updated``
    (at most full); when the limit changed to ``capacity``, what was used carries over."""
    if now > updated:
        level = min(old_capacity, level + (now - updated) * old_capacity / 60.0)
    if capacity != old_capacity:
        level = capacity - (old_capacity - level)
    return level


def wait_for(level: float, capacity: float, n: float) -> float:
    """Seconds until ``n`` can be taken (0: now). More than the capacity needs a full bucket
    (so a huge request is not refused forever)."""
    need = min(n, capacity)
    if level >= need:
        return 0.0
    return (need - level) * 60.0 / capacity


class BucketStore(Protocol):
    """Where token buckets live: this process (``InMemoryBucketStore``) or every process on
    the host (``shared.SharedBucketStore``)."""

    def take(
        self, buckets: Sequence[tuple[BucketKey, float, float]], now: float
    ) -> tuple[float, list[float]]:
        """``buckets``: (key, capacity per minute, amount). Refill each; if every one can give
        its amount, take it from all. Returns (seconds to wait, 0 when taken; the levels)."""
        ...

    def give(self, key: BucketKey, amount: float, now: float) -> None:
        """Add ``amount`` to an existing bucket (negative takes more; at most full)."""
        ...


class InMemoryBucketStore:
    """``BucketStore`` in one process: key -> [level, updated, capacity]. No lock needed
    under asyncio (no ``await`` inside); a lock makes it safe for threads too."""

    def __init__(self) -> None:
        self._buckets: dict[BucketKey, list[float]] = {}
        self._lock = threading.Lock()

    def take(
        self, buckets: Sequence[tuple[BucketKey, float, float]], now: float
    ) -> tuple[float, list[float]]:
        store = self._buckets
        with self._lock:
            cells: list[list[float]] = []
            wait = 0.0
            for key, cap, amount in buckets:
                cell = store.get(key)
                if cell is None:
                    cell = store[key] = [cap, now, cap]
                else:
                    cell[0] = refill(cell[0], cell[1], cell[2], cap, now)
                    cell[1] = now
                    cell[2] = cap
                cells.append(cell)
                wait = max(wait, wait_for(cell[0], cap, amount))
            if wait == 0.0:
                for cell, (_, _, amount) in zip(cells, buckets, strict=True):
                    cell[0] -= amount
            return wait, [cell[0] for cell in cells]

    def give(self, key: BucketKey, amount: float, now: float) -> None:
        with self._lock:
            cell = self._buckets.get(key)
            if cell is None:
                return
            cell[0] = min(cell[2], refill(cell[0], cell[1], cell[2], cell[2], now) + amount)
            cell[1] = now


def format_reset(seconds: float) -> str:
    """OpenAI's duration style: ``20ms``, ``1s``, ``7.5s``, ``6m0s``."""
    if seconds < 1.0:
        return f"{math.ceil(seconds * 1000)}ms"
    tenths = math.ceil(seconds * 10) / 10
    if tenths < 60.0:
        return f"{tenths:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


@dataclass(slots=True)
class RateState:
    """A key's limits after an admitted request: what goes in the response headers."""

    limit_requests: int | None = None
    remaining_requests: int = 0
    reset_requests: float = 0.0
    limit_tokens: int | None = None
    remaining_tokens: int = 0
    reset_tokens: float = 0.0

    def headers(self) -> dict[str, str]:
        h: dict[str, str] = {}
        if self.limit_requests is not None:
            h["x-ratelimit-limit-requests"] = str(self.limit_requests)
            h["x-ratelimit-remaining-requests"] = str(self.remaining_requests)
            h["x-ratelimit-reset-requests"] = format_reset(self.reset_requests)
        if self.limit_tokens is not None:
            h["x-ratelimit-limit-tokens"] = str(self.limit_tokens)
            h["x-ratelimit-remaining-tokens"] = str(self.remaining_tokens)
            h["x-ratelimit-reset-tokens"] = format_reset(self.reset_tokens)
        return h


_UNLIMITED = RateState()


class RateLimiter:
    """Buckets per key id and per model. ``clock`` is monotonic seconds (tests inject one);
    ``store`` holds the buckets (default: this process)."""

    def __init__(
        self,
        models: Mapping[str, RateLimit] | None = None,
        *,
        default_key_limit: RateLimit | None = None,
        clock: Callable[[], float] = time.monotonic,
        store: BucketStore | None = None,
    ) -> None:
        self.models = dict(models or {})
        self.default_key_limit = default_key_limit
        self.clock = clock
        self.store: BucketStore = store if store is not None else InMemoryBucketStore()

    def key_limit(self, limit: RateLimit | None) -> RateLimit | None:
        """The limit that applies to a key with ``limit`` of its own (else the default)."""
        limit = limit if limit is not None and not limit.empty else self.default_key_limit
        return None if limit is None or limit.empty else limit

    def _take(
        self, scope: str, name: str, limit: RateLimit, tokens: int, now: float
    ) -> tuple[float, RateState]:
        """Take 1 request and ``tokens`` if both fit: (0, state); else (wait, state)."""
        wait, levels = self.store.take(_buckets(scope, name, limit, tokens), now)
        return wait, _state(limit, levels)

    def acquire(self, key_id: str | None, limit: RateLimit | None, tokens: int) -> RateState:
        """Admit one request of about ``tokens`` tokens for this key (``limit``: the key's
        own, else the default). Returns the header state; raises ``RateLimited`` (429 with
        the headers and ``retry-after``)."""
        limit = self.key_limit(limit)
        if key_id is None or limit is None:
            return _UNLIMITED
        wait, state = self._take("key", key_id, limit, tokens, self.clock())
        if wait > 0.0:
            raise _refusal(limit, wait, state)
        return state

    async def acquire_async(
        self, key_id: str | None, limit: RateLimit | None, tokens: int
    ) -> RateState:
        """``acquire`` awaiting a store that has ``take_async`` (Redis: the round trip runs on
        the event loop); the same as ``acquire`` on any other store."""
        take_async = getattr(self.store, "take_async", None)
        if take_async is None:
            return self.acquire(key_id, limit, tokens)
        limit = self.key_limit(limit)
        if key_id is None or limit is None:
            return _UNLIMITED
        wait, levels = await take_async(_buckets("key", key_id, limit, tokens), self.clock())
        state = _state(limit, levels)
        if wait > 0.0:
            raise _refusal(limit, wait, state)
        return state

    def release(self, key_id: str | None, limit: RateLimit | None, tokens: int) -> None:
        """Give back what ``acquire`` took, for a request refused after it (by a budget)."""
        limit = self.key_limit(limit)
        if key_id is None or limit is None:
            return
        now = self.clock()
        if limit.rpm:
            self.store.give(("key", key_id, "requests"), 1.0, now)
        if limit.tpm:
            self.store.give(("key", key_id, "tokens"), float(tokens), now)

    def acquire_model(self, model: str, tokens: int) -> float | None:
        """Admit one call to ``model`` (per-model limits, shared by all keys): None if it
        may go now, else the seconds to wait. The engine treats a wait as that model being
        rate-limited (fall back to the next candidate, or answer 429)."""
        limit = self.models.get(model)
        if limit is None:
            return None
        wait, _ = self._take("model", model, limit, tokens, self.clock())
        return wait if wait > 0.0 else None

    async def acquire_model_async(self, model: str, tokens: int) -> float | None:
        """``acquire_model`` awaiting a store that has ``take_async`` (Redis)."""
        limit = self.models.get(model)
        if limit is None:
            return None
        take_async = getattr(self.store, "take_async", None)
        if take_async is None:
            return self.acquire_model(model, tokens)
        wait, _ = await take_async(_buckets("model", model, limit, tokens), self.clock())
        return float(wait) if wait > 0.0 else None

    def model_state(self, model: str) -> RateState | None:
        """The header state of ``model``'s limits without taking anything (None: no limit)."""
        limit = self.models.get(model)
        if limit is None:
            return None
        _, state = self._take("model", model, limit, 0, self.clock())
        return state

    def adjust(self, key_id: str | None, model: str | None, delta_tokens: int) -> None:
        """Correct the token buckets once real usage is known: ``delta_tokens`` = actual -
        estimated (positive takes more, negative gives back)."""
        if delta_tokens == 0:
            return
        now = self.clock()
        for scope, name in (("key", key_id), ("model", model)):
            if name is not None:
                self.store.give((scope, name, "tokens"), float(-delta_tokens), now)


def _buckets(
    scope: str, name: str, limit: RateLimit, tokens: int
) -> list[tuple[BucketKey, float, float]]:
    """The buckets one request takes from: (key, capacity, amount)."""
    buckets: list[tuple[BucketKey, float, float]] = []
    if limit.rpm:
        buckets.append(((scope, name, "requests"), float(limit.rpm), 1.0))
    if limit.tpm:
        buckets.append(((scope, name, "tokens"), float(limit.tpm), float(tokens)))
    return buckets


def _state(limit: RateLimit, levels: list[float]) -> RateState:
    """The header state from the levels ``take`` returned (in ``_buckets``' order)."""
    state = RateState()
    i = 0
    if limit.rpm:
        level = levels[i]
        i += 1
        state.limit_requests = limit.rpm
        state.remaining_requests = max(int(level), 0)
        state.reset_requests = max(limit.rpm - level, 0.0) * 60.0 / limit.rpm
    if limit.tpm:
        level = levels[i]
        state.limit_tokens = limit.tpm
        state.remaining_tokens = max(int(level), 0)
        state.reset_tokens = max(limit.tpm - level, 0.0) * 60.0 / limit.tpm
    return state


def _refusal(limit: RateLimit, wait: float, state: RateState) -> RateLimited:
    which = []
    if state.limit_requests is not None and state.remaining_requests < 1:
        which.append(f"{limit.rpm} requests")
    if state.limit_tokens is not None and not which:
        which.append(f"{limit.tpm} tokens")
    headers = state.headers()
    headers["retry-after"] = str(max(1, math.ceil(wait)))
    return RateLimited(
        f"Rate limit exceeded for this key: {' and '.join(which)} per minute. "
        f"Retry in {wait:.1f} s.",
        retry_after=wait,
        headers=headers,
    )
