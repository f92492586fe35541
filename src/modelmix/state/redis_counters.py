"""``SpendStore`` and ``BucketStore`` (budgets/store.py, budgets/limits.py) on Redis: one set
of budgets and rate limits for every replica of the gateway.

Per admitted request: one round trip to reserve its estimated cost (a Lua script checks every
hard budget and reserves on every counter, or does nothing: replicas cannot overspend, and
the overshoot bound is the one of a single host: the calls in flight at the last admission
costing more than their estimates), one to take from its key's rate-limit buckets (when the
key has limits), and none to settle (written on the event loop's connection without waiting
for the answer, or queued for ``RedisLink``'s thread where no loop runs). On the event loop the
two round trips are awaited (``reserve_seen_async``, ``take_async``: ``state/resp.py``), so the
loop serves other requests meanwhile; the blocking ``reserve_seen`` / ``take`` serve callers
without a loop, and the rare blocking steps (seeding a window's first counter, extending a
stream's reservation past its worst case, reading counters for reports and refusal headers of
per-model limits).

While Redis is down (``RedisLink``): fail_closed raises ``StateUnavailable`` (503); fail_open
uses the replica's own in-memory counters. A reservation is settled where it was made: one made
locally is settled locally, and its spend is also queued for Redis, so the shared total counts
the outage's spend once Redis is back (a counter Redis lost in a restart is seeded again from
the ledger instead).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from modelmix.budgets.enforcer import Budgets
from modelmix.budgets.limits import BucketKey, RateLimiter
from modelmix.budgets.shared import _units, _units_up, _usd
from modelmix.budgets.store import MISSING, CounterKey
from modelmix.state import scripts
from modelmix.state.config import StateConfig
from modelmix.state.link import DOWN_ERRORS, RedisLink

__all__ = ["RedisBucketStore", "RedisSpendStore", "use_redis"]

#: Largest amount a Lua double holds exactly.
_EXACT = 2**53
#: A finished window's counter stays this long past its end (late settlements, reports).
_GRACE = 7 * 86400
#: A bucket untouched this long has refilled completely (it holds at most a minute).
_BUCKET_TTL = 120

_ZERO = Decimal(0)


_SCALE = Decimal(10**10)


def _cap_units(cap: Decimal) -> int:
    return min(int(cap * _SCALE), _EXACT)


def _reserved(out: list[Any]) -> tuple[int | None, list[tuple[Decimal, Decimal]] | None]:
    """The RESERVE script's answer as ``reserve_seen`` returns it."""
    if out[0] == -1:
        return MISSING, None
    seen = [(_usd(int(out[i])), _usd(int(out[i + 1]))) for i in range(1, len(out), 2)]
    return (int(out[0]) - 1 if out[0] else None), seen


class RedisSpendStore:
    """Spend counters in Redis; see the module docstring."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._names: dict[CounterKey, str] = {}
        #: ``id`` of the key lists of reservations made on the local counters (the same list
        #: object reaches ``settle``: ``Reservation`` keeps it).
        self._local: set[int] = set()

    def name(self, key: CounterKey) -> str:
        found = self._names.get(key)
        if found is None:
            if len(self._names) > 100_000:
                self._names.clear()
            scope, subject, start, end = key
            name = self.link.key("spend", scope, repr(start), repr(end), subject)
            found = self._names[key] = name
        return found

    def _reserve_args(
        self,
        keys: Sequence[CounterKey],
        checks: Sequence[tuple[CounterKey, Decimal]],
        amount: Decimal,
    ) -> tuple[list[str], list[Any]]:
        index = {k: i + 1 for i, k in enumerate(keys)}
        args: list[Any] = [min(_units_up(amount), _EXACT), len(checks)]
        for key, cap in checks:
            args += [index[key], _cap_units(cap)]
        return [self.name(k) for k in keys], args

    def _local_reserve(
        self,
        keys: Sequence[CounterKey],
        checks: Sequence[tuple[CounterKey, Decimal]],
        amount: Decimal,
    ) -> tuple[int | None, list[tuple[Decimal, Decimal]] | None]:
        self.link.fallback()
        failed, local = self.link.local_spend.reserve_seen(keys, checks, amount)
        if failed is None:
            self._local.add(id(keys))
        return failed, local

    def reserve_seen(
        self,
        keys: Sequence[CounterKey],
        checks: Sequence[tuple[CounterKey, Decimal]],
        amount: Decimal,
    ) -> tuple[int | None, list[tuple[Decimal, Decimal]] | None]:
        link = self.link
        if link.up:
            names, args = self._reserve_args(keys, checks, amount)
            try:
                out = link.script("RESERVE", scripts.RESERVE)(keys=names, args=args)
            except DOWN_ERRORS as exc:
                link.lost(exc)
            else:
                return _reserved(out)
        return self._local_reserve(keys, checks, amount)

    async def reserve_seen_async(
        self,
        keys: Sequence[CounterKey],
        checks: Sequence[tuple[CounterKey, Decimal]],
        amount: Decimal,
    ) -> tuple[int | None, list[tuple[Decimal, Decimal]] | None]:
        """``reserve_seen`` on the event loop's connection (no thread blocked)."""
        link = self.link
        if link.up:
            names, args = self._reserve_args(keys, checks, amount)
            try:
                out = await link.run("RESERVE", names, args)
            except DOWN_ERRORS as exc:
                link.lost(exc)
            else:
                return _reserved(out)
        return self._local_reserve(keys, checks, amount)

    def reserve(
        self,
        keys: Sequence[CounterKey],
        checks: Sequence[tuple[CounterKey, Decimal]],
        amount: Decimal,
    ) -> int | None:
        failed, _ = self.reserve_seen(keys, checks, amount)
        if failed == MISSING:
            for key in keys:
                self.seed(key, _ZERO)
            failed, _ = self.reserve_seen(keys, checks, amount)
        return failed

    def settle(self, keys: Sequence[CounterKey], reserved: Decimal, actual: Decimal) -> None:
        held = min(_units_up(reserved), _EXACT)
        if id(keys) in self._local:
            self._local.discard(id(keys))
            self.link.local_spend.settle(keys, reserved, actual)
            held = 0  # nothing was reserved in Redis: only the spend goes there
        self.link.send("SETTLE", [self.name(k) for k in keys], [-held, _units(actual)])

    def _read(self, keys: Sequence[CounterKey]) -> list[tuple[Decimal, Decimal] | None] | None:
        """Every counter as Redis has it (None where missing); None when Redis is down."""
        link = self.link
        if not link.up:
            return None
        try:
            pipe = link.client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(self.name(key), "s", "r")
            rows = pipe.execute()
        except DOWN_ERRORS as exc:
            link.lost(exc)
            return None
        return [(_usd(int(s)), _usd(int(r or 0))) if s is not None else None for s, r in rows]

    def get(self, key: CounterKey) -> tuple[Decimal, Decimal]:
        rows = self._read([key])
        if rows is None:
            return self.link.local_spend.get(key)
        return rows[0] or (_ZERO, _ZERO)

    def has(self, key: CounterKey) -> bool:
        rows = self._read([key])
        if rows is None:
            self.link.fallback()
            return self.link.local_spend.has(key)
        return rows[0] is not None

    def peek(self, keys: Sequence[CounterKey]) -> list[tuple[Decimal, Decimal] | None]:
        rows = self._read(keys)
        return rows if rows is not None else self.link.local_spend.peek(keys)

    def seed(self, key: CounterKey, spent: Decimal) -> None:
        link = self.link
        if link.up:
            expires = 0 if math.isinf(key[3]) else int(key[3]) + _GRACE
            try:
                link.script("SEED", scripts.SEED)(
                    keys=[self.name(key)], args=[min(_units(spent), _EXACT), expires]
                )
                return
            except DOWN_ERRORS as exc:
                link.lost(exc)
        link.fallback()
        link.local_spend.seed(key, spent)

    def prune(self, before: float) -> int:
        """Redis expires finished windows itself (``EXPIREAT`` end + a week)."""
        return self.link.local_spend.prune(before)


class RedisBucketStore:
    """Rate-limit buckets in Redis (server time); see the module docstring."""

    def __init__(self, link: RedisLink) -> None:
        self.link = link
        self._names: dict[BucketKey, str] = {}

    def name(self, key: BucketKey) -> str:
        found = self._names.get(key)
        if found is None:
            if len(self._names) > 100_000:
                self._names.clear()
            scope, subject, kind = key
            found = self._names[key] = self.link.key("rate", scope, kind, subject)
        return found

    def _take_args(self, buckets: Sequence[tuple[BucketKey, float, float]]) -> list[Any]:
        args: list[Any] = []
        for _, cap, amount in buckets:
            args += [repr(cap), repr(amount)]
        args.append(_BUCKET_TTL)
        return args

    def take(
        self, buckets: Sequence[tuple[BucketKey, float, float]], now: float
    ) -> tuple[float, list[float]]:
        link = self.link
        if link.up:
            args = self._take_args(buckets)
            try:
                out = link.script("BUCKET_TAKE", scripts.BUCKET_TAKE)(
                    keys=[self.name(k) for k, _, _ in buckets], args=args
                )
            except DOWN_ERRORS as exc:
                link.lost(exc)
            else:
                return float(out[0]), [float(v) for v in out[1:]]
        link.fallback()
        return link.local_buckets.take(buckets, now)

    async def take_async(
        self, buckets: Sequence[tuple[BucketKey, float, float]], now: float
    ) -> tuple[float, list[float]]:
        """``take`` on the event loop's connection (no thread blocked)."""
        link = self.link
        if link.up:
            names = [self.name(k) for k, _, _ in buckets]
            try:
                out = await link.run("BUCKET_TAKE", names, self._take_args(buckets))
            except DOWN_ERRORS as exc:
                link.lost(exc)
            else:
                return float(out[0]), [float(v) for v in out[1:]]
        link.fallback()
        return link.local_buckets.take(buckets, now)

    def give(self, key: BucketKey, amount: float, now: float) -> None:
        if self.link.up:
            self.link.send("BUCKET_GIVE", [self.name(key)], [repr(amount), _BUCKET_TTL])
        else:
            self.link.local_buckets.give(key, amount, now)


def use_redis(settings: StateConfig, budgets: Budgets, limiter: RateLimiter) -> RedisLink:
    """Put ``budgets``' and ``limiter``'s counters in Redis; returns the link (close it)."""
    link = RedisLink(settings)
    budgets.store = RedisSpendStore(link)
    limiter.store = RedisBucketStore(link)
    return link
