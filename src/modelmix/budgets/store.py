"""Where spend and in-flight reservations are counted: the ``SpendStore`` protocol.

A *counter* holds two amounts for one scope and one period window: ``spent`` (settled cost)
and ``reserved`` (estimated cost of calls in flight). Its key is
``(scope, subject, window_start, window_end)``, so a new period simply starts a new counter.

The two operations that matter are atomic over *several* counters at once (a request counts
against its key, its team, its tags and the global budget together):

- ``reserve(keys, checks, amount)``: if for every ``(key, cap)`` in ``checks``
  ``spent + reserved + amount <= cap`` (and ``spent + reserved < cap``), add ``amount`` to
  ``reserved`` on every counter in ``keys``; otherwise change nothing and return the index of
  the first failing check.
- ``settle(keys, reserved, actual)``: ``reserved -= reserved; spent += actual`` on each.

Because admission compares against spent *plus everything in flight*, the final spend can
exceed a cap only by how much the calls in flight at the last admission cost *more* than
their estimates (and, for a zero estimate, by their whole cost): overspend is bounded by what
is in flight.

``InMemorySpendStore`` is the single-process implementation: a dict and a lock (the lock is
uncontended under asyncio; it makes the store safe for threads too). Every operation is O(number
of counters touched), with no I/O.

Redis mapping (for replicas on several hosts; implemented in ``state/redis_counters.py``,
without the reservation sweeper: a crashed replica's reservations stay held until the window
ends):

- Counter ``(scope, subject, start, end)`` -> hash ``mm:spend:{scope}:{subject}:{start}`` with
  integer fields ``spent`` and ``reserved`` in nano-USD (Decimal x 10^9, so sums stay exact;
  costs finer than 1e-9 USD are rounded up when reserving and to nearest when settling), and
  ``EXPIREAT`` end + a grace period, so old windows clean themselves up.
- ``reserve`` -> one Lua script (``EVALSHA``; atomic on the server) taking the counter keys,
  the caps and the amount: ``HMGET`` each checked counter, compare, then ``HINCRBY reserved``
  on each; it also writes ``mm:resv:{reservation id}`` = amount + counter keys and adds the id
  to the sorted set ``mm:resv:deadlines`` scored by an expiry time, so reservations of a
  crashed process are released by a periodic sweeper script instead of leaking.
- ``settle`` -> a Lua script: ``HINCRBY reserved -est``, ``HINCRBY spent +actual`` on each
  counter, ``DEL`` the reservation and ``ZREM`` it from the deadlines (a no-op if the sweeper
  got there first, so a late settle only adds the spend).
- ``seed`` (start-up load from the ledger) -> ``HSETNX spent``: the first process to start
  seeds a window; others keep the live value.
- The hot path then costs one round trip per reserve and one per settle; the key verification
  and rate limits stay in-process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Protocol, TypeVar

__all__ = ["MISSING", "CounterKey", "InMemorySpendStore", "SpendStore", "first_over"]

#: (scope, subject, window start, window end)
CounterKey = tuple[str, str, float, float]
#: ``reserve_seen``: a counter does not exist yet (nothing was done).
MISSING = -1

_ZERO = Decimal(0)

N = TypeVar("N", int, Decimal)


def first_over(used_caps: Iterable[tuple[N, N]], amount: N) -> int | None:
    """The reservation rule, for every store that checks in Python (the Redis one checks the
    same in Lua, ``state/scripts.py``): the index of the first ``(used, cap)`` that cannot
    take ``amount`` more (already at its cap, or past it with ``amount``); None if all can."""
    for i, (used, cap) in enumerate(used_caps):
        if used >= cap or used + amount > cap:
            return i
    return None


class SpendStore(Protocol):
    def reserve(
        self,
        keys: Sequence[CounterKey],
        checks: Sequence[tuple[CounterKey, Decimal]],
        amount: Decimal,
    ) -> int | None:
        """Reserve ``amount`` on every counter of ``keys`` if every check passes; ``None`` on
        success, else the index in ``checks`` of the first check that failed (nothing done)."""
        ...

    def reserve_seen(
        self,
        keys: Sequence[CounterKey],
        checks: Sequence[tuple[CounterKey, Decimal]],
        amount: Decimal,
    ) -> tuple[int | None, list[tuple[Decimal, Decimal]] | None]:
        """``reserve`` that also returns every counter of ``keys`` as it was before (one atomic
        step: what the request path uses). ``(MISSING, None)``, with nothing done, when a
        counter of ``keys`` does not exist yet (the caller seeds it and tries again)."""
        ...

    def settle(self, keys: Sequence[CounterKey], reserved: Decimal, actual: Decimal) -> None:
        """Turn a reservation into spend: ``reserved -= reserved; spent += actual``."""
        ...

    def get(self, key: CounterKey) -> tuple[Decimal, Decimal]:
        """``(spent, reserved)``; zeros for an unknown counter."""
        ...

    def has(self, key: CounterKey) -> bool: ...

    def peek(self, keys: Sequence[CounterKey]) -> list[tuple[Decimal, Decimal] | None]:
        """``(spent, reserved)`` of each counter, None for one that does not exist (one
        look, under one lock, for the request path)."""
        ...

    def seed(self, key: CounterKey, spent: Decimal) -> None:
        """Set a counter's initial spend (from the ledger) unless it exists already."""
        ...

    def prune(self, before: float) -> int:
        """Forget counters whose window ended before ``before``; returns how many."""
        ...


class InMemorySpendStore:
    """``SpendStore`` in one process's memory."""

    def __init__(self) -> None:
        # counter -> [spent, reserved]
        self._counters: dict[CounterKey, list[Decimal]] = {}
        self._lock = threading.Lock()

    def reserve(
        self,
        keys: Sequence[CounterKey],
        checks: Sequence[tuple[CounterKey, Decimal]],
        amount: Decimal,
    ) -> int | None:
        counters = self._counters
        with self._lock:
            failed = first_over(((_used(counters.get(key)), cap) for key, cap in checks), amount)
            if failed is not None:
                return failed
            for key in keys:
                c = counters.get(key)
                if c is None:
                    counters[key] = [_ZERO, amount]
                else:
                    c[1] += amount
        return None

    def reserve_seen(
        self,
        keys: Sequence[CounterKey],
        checks: Sequence[tuple[CounterKey, Decimal]],
        amount: Decimal,
    ) -> tuple[int | None, list[tuple[Decimal, Decimal]] | None]:
        counters = self._counters
        with self._lock:
            cells = [counters.get(key) for key in keys]
            if any(c is None for c in cells):
                return MISSING, None
            seen = [(c[0], c[1]) for c in cells if c is not None]
            failed = first_over(((_used(counters[key]), cap) for key, cap in checks), amount)
            if failed is not None:
                return failed, seen
            for cell in cells:
                if cell is not None:
                    cell[1] += amount
        return None, seen

    def settle(self, keys: Sequence[CounterKey], reserved: Decimal, actual: Decimal) -> None:
        counters = self._counters
        with self._lock:
            for key in keys:
                c = counters.get(key)
                if c is None:
                    counters[key] = [actual, _ZERO]
                else:
                    c[0] += actual
                    c[1] -= reserved

    def get(self, key: CounterKey) -> tuple[Decimal, Decimal]:
        c = self._counters.get(key)
        return (c[0], c[1]) if c is not None else (_ZERO, _ZERO)

    def has(self, key: CounterKey) -> bool:
        return key in self._counters

    def peek(self, keys: Sequence[CounterKey]) -> list[tuple[Decimal, Decimal] | None]:
        counters = self._counters
        out: list[tuple[Decimal, Decimal] | None] = []
        for key in keys:
            c = counters.get(key)
            out.append((c[0], c[1]) if c is not None else None)
        return out

    def seed(self, key: CounterKey, spent: Decimal) -> None:
        with self._lock:
            if key not in self._counters:
                self._counters[key] = [spent, _ZERO]

    def prune(self, before: float) -> int:
        with self._lock:
            old = [k for k in self._counters if k[3] < before]
            for k in old:
                del self._counters[k]
        return len(old)


def _used(counter: list[Decimal] | None) -> Decimal:
    return counter[0] + counter[1] if counter is not None else _ZERO
