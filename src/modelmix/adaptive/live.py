"""Live per-deployment estimates: time to first token, output tokens per second, error rate,
typical completion length and requests in flight.

Each estimate is two exponentially weighted averages: a fast one (``FAST`` per sample, so a
deployment that turns slow is seen within a few requests) and a slow one, the baseline
(seeded from the ledger at start-up, see ``seed.py``). The fast one fades into the baseline
with the time since its last sample (``half_life`` seconds): a deployment the router stopped
calling because it was slow is tried again once its bad news is old, and seen again at once
if it still is slow. A sample arriving after a quiet spell weighs as much as the old news has
faded (at least ``FAST``), so one fast answer after a recovery brings the traffic back.

Storage is three slots of three floats per deployment, in process memory or, for
``serve --workers N``, in a file mapped by every worker (the budgets' ``SharedTable``), so all
workers see the same in-flight counts and estimates. Every operation is a few reads and writes
of memory: no I/O on the request path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from modelmix.budgets.shared import SharedTable, _digest

__all__ = ["FAST", "SLOW", "Estimate", "LiveStats"]

#: Weight of one sample in the fast and slow averages.
FAST = 0.3
SLOW = 0.02
Triple = tuple[float, float, float]
_ZERO: Triple = (0.0, 0.0, 0.0)
_KEEP_S = 7 * 86400.0  # shared slots expire after a week without use


class _Slots(Protocol):
    def read(self, key: tuple[str, str]) -> Triple: ...

    def update(self, key: tuple[str, str], fn: Callable[[Triple], Triple]) -> Triple: ...


class _LocalSlots:
    """One process's slots (the event loop is the only writer: no lock needed)."""

    def __init__(self) -> None:
        self._d: dict[tuple[str, str], Triple] = {}

    def read(self, key: tuple[str, str]) -> Triple:
        return self._d.get(key, _ZERO)

    def update(self, key: tuple[str, str], fn: Callable[[Triple], Triple]) -> Triple:
        new = fn(self._d.get(key, _ZERO))
        self._d[key] = new
        return new


class _SharedSlots:
    """Slots in a memory-mapped file shared by every worker on the host."""

    def __init__(self, table: SharedTable) -> None:
        self.table = table
        self._cache: dict[bytes, int] = {}

    def read(self, key: tuple[str, str]) -> Triple:
        d = _digest("live", key)
        with self.table.locked():
            off = self.table.lookup(d, self._cache)
            return _ZERO if off is None else self.table.floats(off)

    def update(self, key: tuple[str, str], fn: Callable[[Triple], Triple]) -> Triple:
        d = _digest("live", key)
        t = self.table
        with t.locked():
            off = t.lookup(d, self._cache)
            if off is None:
                off = t.insert(d, time.time() + _KEEP_S)
            new = fn(t.floats(off))
            t.set_floats(off, *new)
            return new


@dataclass(slots=True, frozen=True)
class Estimate:
    """What one deployment looks like now (None: never observed nor seeded)."""

    ttft_ms: float | None
    tokens_per_s: float | None
    error_rate: float
    tokens: float | None
    in_flight: int
    samples: int

    def latency_ms(self, tokens: float | None, cap: int | None = None) -> float | None:
        """Predicted time to the whole answer of ``tokens`` output tokens (None: the
        deployment's typical length), at most ``cap`` (the request's ``max_tokens``)."""
        if self.ttft_ms is None:
            return None
        toks = tokens if tokens is not None else self.tokens
        if toks is not None and cap is not None:
            toks = min(toks, float(cap))
        if not toks or not self.tokens_per_s:
            return self.ttft_ms
        return self.ttft_ms + 1000.0 * toks / self.tokens_per_s


def _ewma(old: float, new: float, weight: float, first: bool) -> float:
    return new if first else old + weight * (new - old)


class LiveStats:
    """Estimates and in-flight counts per deployment id; see the module docstring."""

    def __init__(self, half_life: float = 10.0, path: str | Path | None = None) -> None:
        self.half_life = half_life
        self._tau = half_life / math.log(2)
        self._table: SharedTable | None = None
        if path is not None:
            self._table = SharedTable(path, 4096)
            self.slots: _Slots = _SharedSlots(self._table)
        else:
            self.slots = _LocalSlots()

    @property
    def fresh(self) -> bool:
        """No other process was using the shared slots (seed them from the ledger)."""
        return self._table is None or self._table.fresh

    def close(self) -> None:
        if self._table is not None:
            self._table.close()

    # -- in flight (slot "e": error rate, typical tokens, in flight) --------------------

    def begin(self, dep: str) -> None:
        self.slots.update(("e", dep), lambda v: (v[0], v[1], v[2] + 1.0))

    def release(self, dep: str) -> None:
        """A call counted by ``begin`` ended without telling anything about the deployment
        (cancelled, or the request's own fault)."""
        self.slots.update(("e", dep), lambda v: (v[0], v[1], max(v[2] - 1.0, 0.0)))

    def in_flight(self, dep: str) -> int:
        return max(int(self.slots.read(("e", dep))[2]), 0)

    def first_token(self, dep: str, ttft_ms: float, now: float | None = None) -> None:
        """A stream's first token: the time to it is known before the answer ends."""
        self._timing(dep, ttft_ms, None, now)

    def end(
        self,
        dep: str,
        *,
        ok: bool,
        ttft_ms: float | None = None,
        tokens: int = 0,
        latency_ms: float | None = None,
        now: float | None = None,
        in_flight: bool = True,
        ttft_seen: bool = False,
    ) -> None:
        """A call ended (``in_flight``: it was counted by ``begin``; ``ttft_seen``: its
        time to first token was given to ``first_token`` already, a stream)."""
        err = 0.0 if ok else 1.0
        drop = 1.0 if in_flight else 0.0

        def upd(v: Triple) -> Triple:
            toks = _ewma(v[1], float(tokens), FAST, v[1] == 0.0) if ok and tokens else v[1]
            return (v[0] + FAST * (err - v[0]), toks, max(v[2] - drop, 0.0))

        self.slots.update(("e", dep), upd)
        if not ok:
            return
        tps = None
        if tokens and latency_ms is not None and ttft_ms is not None and latency_ms > ttft_ms:
            tps = tokens / ((latency_ms - ttft_ms) / 1000.0)
        if ttft_ms is not None and not ttft_seen:
            self._timing(dep, ttft_ms, tps, now)
        elif tps is not None:
            self._timing(dep, None, tps, now)

    def _timing(self, dep: str, ttft: float | None, tps: float | None, now: float | None) -> None:
        now = time.time() if now is None else now

        def upd(v: Triple, weight: float, stamp: float | None) -> Triple:
            first = v[0] == 0.0
            if stamp is not None and v[2]:  # the fast average: weigh by how stale it is
                weight = max(weight, 1.0 - math.exp(-max(stamp - v[2], 0.0) / self._tau))
            return (
                v[0] if ttft is None else _ewma(v[0], ttft, weight, first),
                v[1] if tps is None else _ewma(v[1], tps, weight, v[1] == 0.0),
                v[2] + (ttft is not None) if stamp is None else stamp,
            )

        self.slots.update(("s", dep), lambda v: upd(v, SLOW, None))
        self.slots.update(("f", dep), lambda v: upd(v, FAST, now))

    def seed(
        self, dep: str, ttft_ms: float, tokens_per_s: float | None, error_rate: float, tokens: float
    ) -> None:
        """The baseline from history (the ledger), before any live sample."""
        self.slots.update(("s", dep), lambda v: (ttft_ms, tokens_per_s or 0.0, 1.0))
        self.slots.update(("e", dep), lambda v: (error_rate, tokens, v[2]))

    def estimate(self, dep: str, now: float | None = None) -> Estimate:
        fast = self.slots.read(("f", dep))
        slow = self.slots.read(("s", dep))
        e = self.slots.read(("e", dep))
        samples = int(slow[2])
        if samples == 0:
            return Estimate(None, None, e[0], e[1] or None, max(int(e[2]), 0), 0)
        if fast[2] == 0.0:  # seeded only
            ttft, tps = slow[0], slow[1]
        else:
            now = time.time() if now is None else now
            w = math.exp(-max(now - fast[2], 0.0) / self._tau)
            ttft = w * fast[0] + (1 - w) * slow[0]
            tps = w * fast[1] + (1 - w) * slow[1] if slow[1] else fast[1]
        return Estimate(ttft, tps or None, e[0], e[1] or None, max(int(e[2]), 0), samples)
