"""Live per-deployment estimates: time to first token, output tokens per second, error rate,
typical completion length and requests in flight.

Each estimate is two exponentially weighted averages: a fast one (``FAST`` per sample, so a
deployment that turns slow is seen within a few requests) and a slow one, the baseline (an
average over time rather than samples, see ``SLOW_HORIZON``; seeded from the ledger at start-up,
see ``seed.py``). The fast one fades into the baseline with the time since its last sample
(``half_life`` seconds): a deployment the router stopped calling because it was slow is tried
again once its bad news is old (one request at a time, see ``adaptive/plan.py``), and seen
again at once if it still is slow. A sample arriving after a quiet spell weighs as much as the
old news has faded (at least ``FAST``), so one fast answer after a recovery brings the traffic
back. A deployment that has had calls in flight and given no news (no first token, no answer)
for longer than its estimate is slower than that already: the estimate is at least the stall,
so a deployment that turns slow is left before its first slow answer returns.

Storage is twelve floats per deployment (``_FIELDS``), in process memory or, for
``serve --workers N``, in a file mapped by every worker (four slots of the budgets'
``SharedTable``), so all workers see the same in-flight counts and estimates. Every operation
is one lock and a few reads and writes of memory: no I/O on the request path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from modelmix.budgets.shared import SharedTable, _digest

if TYPE_CHECKING:
    from modelmix.config import Config

__all__ = ["FAST", "SLOW", "Estimate", "LiveStats", "uses_live"]

#: Weight of one sample in the fast average, and at most in the slow one (the baseline). The
#: baseline is an average over time, not over samples: a sample weighs as much as the time since
#: the previous one is of ``SLOW_HORIZON`` half-lives (at least ``SLOW_MIN``), so a burst of slow
#: answers at a high request rate cannot drag the baseline (which the fast estimate fades back
#: to) up with it, and a deployment left because it was slow is still tried again.
FAST = 0.3
SLOW = 0.02
SLOW_MIN = 0.002
SLOW_HORIZON = 10.0
#: One deployment's values: fast ttft, fast tokens/s, time of the last fast sample; slow
#: (baseline) ttft, tokens/s, sample count; error rate, typical tokens, in flight; since when
#: something has been in flight, when the deployment last gave news (a first token or an
#: answer), and one spare.
F_TTFT, F_TPS, F_AT, S_TTFT, S_TPS, S_N, ERR, TOKS, INFL, BUSY, NEWS, _SPARE = range(12)
_FIELDS = 12
_KEEP_S = 7 * 86400.0  # shared slots expire after a week without use
Values = list[float]


class _Store(Protocol):
    def get(self, dep: str) -> Values: ...

    def apply(self, dep: str, fn: Callable[[Values], None]) -> None: ...


class _LocalStore:
    """One process's values (the event loop is the only writer: no lock needed)."""

    def __init__(self) -> None:
        self._d: dict[str, Values] = {}

    def get(self, dep: str) -> Values:
        return self._d.get(dep) or [0.0] * _FIELDS

    def apply(self, dep: str, fn: Callable[[Values], None]) -> None:
        v = self._d.get(dep)
        if v is None:
            v = self._d[dep] = [0.0] * _FIELDS
        fn(v)


class _SharedStore:
    """Values in a memory-mapped file shared by every worker on the host: four slots of
    three floats per deployment, read and written under one lock."""

    def __init__(self, table: SharedTable) -> None:
        self.table = table
        self._offsets: dict[bytes, int] = {}
        self._digests: dict[str, tuple[bytes, ...]] = {}

    def _keys(self, dep: str) -> tuple[bytes, ...]:
        keys = self._digests.get(dep)
        if keys is None:
            keys = self._digests[dep] = tuple(_digest("live", (part, dep)) for part in "fsew")
        return keys

    def get(self, dep: str) -> Values:
        t = self.table
        out: Values = []
        with t.locked():
            for d in self._keys(dep):
                off = t.lookup(d, self._offsets)
                out.extend((0.0, 0.0, 0.0) if off is None else t.floats(off))
        return out

    def apply(self, dep: str, fn: Callable[[Values], None]) -> None:
        t = self.table
        with t.locked():
            offs = []
            for d in self._keys(dep):
                off = t.lookup(d, self._offsets)
                offs.append(off if off is not None else t.insert(d, time.time() + _KEEP_S))
            v: Values = []
            for off in offs:
                v.extend(t.floats(off))
            fn(v)
            for i, off in enumerate(offs):
                t.set_floats(off, v[3 * i], v[3 * i + 1], v[3 * i + 2])


@dataclass(slots=True, frozen=True)
class Estimate:
    """What one deployment looks like now (None: never observed nor seeded)."""

    ttft_ms: float | None
    tokens_per_s: float | None
    error_rate: float
    tokens: float | None
    in_flight: int
    samples: int
    #: Running + waiting on the server by its own queue metrics (None: none fresh); the
    #: ``in_flight`` above is already at least this.
    queued: int | None = None
    #: The fast average's time to first token before it fades (the latest news): above a
    #: route's limit while ``ttft_ms`` is back under it, the deployment is on probation.
    recent_ttft_ms: float | None = None
    #: Milliseconds with calls in flight and no news (a first token or an answer) from the
    #: deployment; ``ttft_ms`` is at least this: a stalled deployment is seen before its slow
    #: answers come back.
    stalled_ms: float = 0.0

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


def _ewma(old: float, new: float, weight: float) -> float:
    return new if old == 0.0 else old + weight * (new - old)


class LiveStats:
    """Estimates and in-flight counts per deployment id; see the module docstring."""

    def __init__(self, half_life: float = 10.0, path: str | Path | None = None) -> None:
        self.half_life = half_life
        self._tau = half_life / math.log(2)
        self._table: SharedTable | None = None
        #: Deployment -> (running + waiting on the server, valid until): the queue metrics
        #: (adaptive/queue.py), per process (each worker polls).
        self.queued: dict[str, tuple[int, float]] = {}
        self.store: _Store
        if path is not None:
            self._table = SharedTable(path, 4096)
            self.store = _SharedStore(self._table)
        else:
            self.store = _LocalStore()

    @property
    def fresh(self) -> bool:
        """No other process was using the shared values (seed them from the ledger)."""
        return self._table is None or self._table.fresh

    def close(self) -> None:
        if self._table is not None:
            self._table.close()

    def begin(self, dep: str, now: float | None = None) -> None:
        """A call to ``dep`` starts: one more in flight."""
        at = time.time() if now is None else now
        self.store.apply(dep, lambda v: _begin(v, at))

    def release(self, dep: str) -> None:
        """A call counted by ``begin`` ended without telling anything about the deployment
        (cancelled, or the request's own fault)."""
        self.store.apply(dep, _release)

    def in_flight(self, dep: str) -> int:
        """Calls in flight from the gateway, or the server's queue when it reports more."""
        counted = max(int(self.store.get(dep)[INFL]), 0)
        queued = self.queue(dep)
        return counted if queued is None else max(counted, queued)

    def queue(self, dep: str, now: float | None = None) -> int | None:
        """Running + waiting on ``dep``'s server by its fresh queue metrics (None: none)."""
        found = self.queued.get(dep) if self.queued else None
        if found is None:
            return None
        n, until = found
        return n if (time.time() if now is None else now) <= until else None

    def first_token(self, dep: str, ttft_ms: float, now: float | None = None) -> None:
        """A stream's first token: the time to it is known before the answer ends."""
        at = time.time() if now is None else now
        self.store.apply(dep, lambda v: self._timing(v, ttft_ms, None, at))

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
        at = time.time() if now is None else now
        tps = None
        timed = ok and tokens and latency_ms is not None and ttft_ms is not None
        if timed and latency_ms is not None and ttft_ms is not None and latency_ms > ttft_ms:
            tps = tokens / ((latency_ms - ttft_ms) / 1000.0)

        def upd(v: Values) -> None:
            v[ERR] += FAST * ((0.0 if ok else 1.0) - v[ERR])
            v[NEWS] = at
            if in_flight:
                v[INFL] = max(v[INFL] - 1.0, 0.0)
            if not ok:
                return
            if tokens:
                v[TOKS] = _ewma(v[TOKS], float(tokens), FAST)
            ttft = None if ttft_seen else ttft_ms
            if ttft is not None or tps is not None:
                self._timing(v, ttft, tps, at)

        self.store.apply(dep, upd)

    def _timing(self, v: Values, ttft: float | None, tps: float | None, now: float) -> None:
        """Fold one sample into the slow and fast averages. A sample after a quiet spell
        weighs as much as the old news has faded (at least ``FAST``)."""
        fast, slow = FAST, SLOW
        v[NEWS] = now
        if v[F_AT]:
            quiet = max(now - v[F_AT], 0.0) / self._tau
            fast = max(FAST, 1.0 - math.exp(-quiet))
            slow = min(SLOW, max(SLOW_MIN, 1.0 - math.exp(-quiet / SLOW_HORIZON)))
        if ttft is not None:
            v[S_TTFT] = _ewma(v[S_TTFT], ttft, slow)
            v[F_TTFT] = _ewma(v[F_TTFT], ttft, fast)
            v[S_N] += 1.0
        if tps is not None:
            v[S_TPS] = _ewma(v[S_TPS], tps, slow)
            v[F_TPS] = _ewma(v[F_TPS], tps, fast)
        v[F_AT] = now

    def seed(
        self, dep: str, ttft_ms: float, tokens_per_s: float | None, error_rate: float, tokens: float
    ) -> None:
        """The baseline from history (the ledger), before any live sample."""

        def upd(v: Values) -> None:
            v[S_TTFT], v[S_TPS], v[S_N] = ttft_ms, tokens_per_s or 0.0, 1.0
            v[ERR], v[TOKS] = error_rate, tokens

        self.store.apply(dep, upd)

    def estimate(self, dep: str, now: float | None = None) -> Estimate:
        v = self.store.get(dep)
        infl, samples = max(int(v[INFL]), 0), int(v[S_N])
        queued = self.queue(dep, now)
        if queued is not None:
            infl = max(infl, queued)
        if samples == 0:
            return Estimate(None, None, v[ERR], v[TOKS] or None, infl, 0, queued)
        now = time.time() if now is None else now
        if v[F_AT] == 0.0:  # seeded only
            ttft, tps = v[S_TTFT], v[S_TPS]
        else:
            w = math.exp(-max(now - v[F_AT], 0.0) / self._tau)
            ttft = w * v[F_TTFT] + (1 - w) * v[S_TTFT]
            tps = w * v[F_TPS] + (1 - w) * v[S_TPS] if v[S_TPS] else v[F_TPS]
        stalled = _stalled_ms(v, now)
        recent = v[F_TTFT] or None
        return Estimate(
            max(ttft, stalled), tps or None, v[ERR], v[TOKS] or None, infl, samples, queued,
            recent, stalled,
        )  # fmt: skip


def _begin(v: Values, now: float) -> None:
    if v[INFL] < 1.0:
        v[BUSY] = now
    v[INFL] += 1.0


def _stalled_ms(v: Values, now: float) -> float:
    """How long calls have been in flight with no news from the deployment (0: none in
    flight): a first token takes at least this long now, whatever the averages say."""
    if v[INFL] < 1.0 or not v[BUSY]:
        return 0.0
    return max(now - max(v[BUSY], v[NEWS]), 0.0) * 1000.0


def _release(v: Values) -> None:
    v[INFL] = max(v[INFL] - 1.0, 0.0)


def uses_live(config: Config) -> bool:
    """Some route or model routes on the live estimates (an ``adaptive:`` section, a
    ``capacity``, a ``balance`` other than weighted): they must be shared by the workers."""
    if any(r.adaptive is not None for r in config.routes):
        return True
    return any(
        m.capacity is not None
        or m.queue_metrics is not None
        or m.balance != "weighted"
        or any(d.capacity is not None for d in m.deployments)
        for m in config.models
    )
