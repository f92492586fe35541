"""Budgets on the request path: reserve the estimated cost before a call, settle the real one.

    budgets = Budgets(config_specs, clock=time.time)
    budgets.initialise(ledger_spend_loader(db_path))     # once, at start-up
    reservation = budgets.check_and_reserve(ctx, estimated_cost)   # may raise BudgetExceeded
    try:
        ... call, using reservation.pressure to pick cheaper models ...
    finally:
        reservation.settle(record.cost_usd)                # 0 if nothing was spent

Per request this is a handful of dict operations per applicable budget; no I/O. The one
exception: the first request after a budget appears that did not exist at start-up (a key
updated with a new budget) loads that budget's current spend from the ledger once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from modelmix.budgets.definitions import BudgetSpec
from modelmix.budgets.errors import BudgetExceeded
from modelmix.budgets.store import MISSING, CounterKey, InMemorySpendStore, SpendStore

__all__ = ["BudgetContext", "Budgets", "Reservation", "SpendLoader"]

_ZERO = Decimal(0)
#: Below this many seconds a paced budget's wait is worth an SDK retry.
_RETRYABLE_WAIT = 60.0

#: (budgets, now) -> spend per counter, from the ledger: see ``ledger_spend.py``.
SpendLoader = Callable[[Sequence[BudgetSpec], float], dict[CounterKey, Decimal]]


@dataclass(slots=True)
class BudgetContext:
    """Who a request's spend counts against."""

    key_id: str | None = None
    team: str | None = None
    tags: tuple[str, ...] = ()
    #: The key's own budgets (``KeyInfo.budgets``).
    key_budgets: tuple[BudgetSpec, ...] = ()


class Reservation:
    """An admitted request's hold on its budgets. Settle it exactly once (later calls are
    ignored), whatever happened to the request."""

    __slots__ = ("_checks", "_keys", "_store", "amount", "label", "pressure", "settled", "warnings")

    def __init__(
        self,
        store: SpendStore | None,
        keys: Sequence[CounterKey],
        amount: Decimal,
        pressure: float,
        warnings: list[str],
        checks: Sequence[tuple[CounterKey, Decimal]] = (),
        label: str = "",
    ) -> None:
        self._store = store
        self._keys = keys
        #: (counter, cap) of the hard and paced budgets: what ``extend`` must still fit under
        self._checks = checks
        #: the first hard or paced budget's label (for an error naming it)
        self.label = label
        self.amount = amount
        #: 0 = no budget under pressure; 1 = a budget is at (or past) what it allows.
        self.pressure = pressure
        #: Soft budgets past their limit, e.g. "team:search soft day budget $20 exceeded".
        self.warnings = warnings
        self.settled = False

    def settle(self, actual_cost: Decimal) -> None:
        if self.settled:
            return
        self.settled = True
        if self._store is not None and self._keys:
            self._store.settle(self._keys, self.amount, actual_cost)

    def extend(self, extra: Decimal) -> bool:
        """Hold ``extra`` more (a stream past its worst case), if every hard and paced budget
        can cover it; False (nothing held) otherwise."""
        if self.settled or self._store is None or not self._keys:
            return True
        failed, _ = self._store.reserve_seen(self._keys, self._checks, extra)
        if failed is not None:
            return False
        self.amount += extra
        return True

    def release(self) -> None:
        """The request cost nothing (refused or failed before any upstream charged)."""
        self.settle(_ZERO)


#: What a request gets when no budget applies to it.
_FREE = Reservation(None, (), _ZERO, 0.0, [])


def _money(value: Decimal) -> str:
    """``$12.5``, ``$0.0142``; amounts under a cent keep 2 significant digits (``$0.00046``,
    ``$0.00000012``) rather than rounding to ``$0.0005`` or ``$0``."""
    if value and abs(value) < Decimal("0.01"):
        two_digits = Decimal(1).scaleb(value.adjusted() - 1)
        return "$" + format(value.quantize(two_digits).normalize(), "f")
    return f"${value.quantize(Decimal('0.0001')).normalize():f}"


class _Plan(NamedTuple):
    """One reservation's counters: what ``check_and_reserve`` computes before the store."""

    now: float
    live: list[tuple[BudgetSpec, tuple[float, float], CounterKey]]
    keys: list[CounterKey]
    caps: list[tuple[BudgetSpec, tuple[float, float], CounterKey, Decimal]]
    checks: list[tuple[CounterKey, Decimal]]


class Budgets:
    """Every budget in force: from the config (global, team, tag) and on keys."""

    def __init__(
        self,
        specs: Iterable[BudgetSpec] = (),
        *,
        store: SpendStore | None = None,
        clock: Callable[[], float] = time.time,
        loader: SpendLoader | None = None,
    ) -> None:
        self.store: SpendStore = store if store is not None else InMemorySpendStore()
        self.clock = clock
        self.loader = loader
        self._global: list[BudgetSpec] = []
        self._teams: dict[str, list[BudgetSpec]] = {}
        self._tags: dict[str, list[BudgetSpec]] = {}
        for spec in specs:
            self._add(spec)
        #: series -> since when its spend is counted here (before that: ask the ledger)
        self._tracked: dict[tuple[Any, ...], float] = {}
        self._started = clock()

    def _add(self, spec: BudgetSpec) -> None:
        if spec.scope == "global":
            self._global.append(spec)
        elif spec.scope == "team":
            self._teams.setdefault(spec.subject, []).append(spec)
        elif spec.scope == "tag":
            self._tags.setdefault(spec.subject, []).append(spec)
        else:
            raise ValueError("key budgets belong on the key (KeyInfo.budgets), not the config")

    @property
    def configured(self) -> list[BudgetSpec]:
        """Config budgets: global, then per team, then per tag."""
        out = list(self._global)
        for team_specs in self._teams.values():
            out += team_specs
        for tag_specs in self._tags.values():
            out += tag_specs
        return out

    # -- start-up --------------------------------------------------------------------------

    def initialise(
        self, loader: SpendLoader | None = None, key_budgets: Iterable[BudgetSpec] = ()
    ) -> None:
        """Seed the current windows' spend from the ledger, so a restart does not reset
        budgets. ``key_budgets``: the budgets on every active key (``KeyStore.all_budgets``).
        ``loader`` also serves budgets that appear later (kept for that)."""
        if loader is not None:
            self.loader = loader
        specs = self.configured + list(key_budgets)
        now = self.clock()
        if self.loader is not None and specs:
            for key, spent in self.loader(specs, now).items():
                self.store.seed(key, spent)
        for spec in specs:
            self._tracked.setdefault(_series(spec), now)

    # -- the request path ------------------------------------------------------------------

    def applicable(self, ctx: BudgetContext) -> list[BudgetSpec]:
        specs = list(self._global)
        if ctx.team is not None:
            team = self._teams.get(ctx.team)
            if team:
                specs += team
        if self._tags:
            for tag in ctx.tags:
                tagged = self._tags.get(tag)
                if tagged:
                    specs += tagged
        if ctx.key_budgets:
            specs += ctx.key_budgets
        return specs

    def check_and_reserve(
        self,
        ctx: BudgetContext,
        estimated_cost: Decimal,
        specs: Sequence[BudgetSpec] | None = None,
    ) -> Reservation:
        """Reserve ``estimated_cost`` against every budget that applies to ``ctx``.

        Raises ``BudgetExceeded`` (HTTP 429, code ``budget_exceeded``) when a hard budget, or
        a paced budget's allowance so far, cannot cover it. Soft budgets never refuse: once
        spent and in flight pass one, it adds a warning. The reservation's ``pressure`` (max
        over budgets) says how close the tightest budget is to what it allows. ``specs``:
        ``applicable(ctx)`` if the caller has it already."""
        plan = self._plan(ctx, specs)
        if plan is None:
            return _FREE
        store = self.store
        # one atomic step: look at every counter and reserve if every check passes
        failed, seen = store.reserve_seen(plan.keys, plan.checks, estimated_cost)
        if failed == MISSING:  # the first request of a budget's window: seed its counter
            self._seed(plan)
            failed, seen = store.reserve_seen(plan.keys, plan.checks, estimated_cost)
        return self._reserved(plan, estimated_cost, failed, seen)

    async def check_and_reserve_async(
        self,
        ctx: BudgetContext,
        estimated_cost: Decimal,
        specs: Sequence[BudgetSpec] | None = None,
    ) -> Reservation:
        """``check_and_reserve`` awaiting a store that has ``reserve_seen_async`` (Redis: the
        round trip runs on the event loop); the same as ``check_and_reserve`` otherwise."""
        reserve = getattr(self.store, "reserve_seen_async", None)
        if reserve is None:
            return self.check_and_reserve(ctx, estimated_cost, specs)
        plan = self._plan(ctx, specs)
        if plan is None:
            return _FREE
        failed, seen = await reserve(plan.keys, plan.checks, estimated_cost)
        if failed == MISSING:  # rare (a window's first request): seeding blocks briefly
            self._seed(plan)
            failed, seen = await reserve(plan.keys, plan.checks, estimated_cost)
        return self._reserved(plan, estimated_cost, failed, seen)

    def _plan(self, ctx: BudgetContext, specs: Sequence[BudgetSpec] | None) -> _Plan | None:
        """The counters and caps one reservation touches now (None: no budget applies)."""
        if specs is None:
            specs = self.applicable(ctx)
        if not specs:
            return None
        now = self.clock()
        live: list[tuple[BudgetSpec, tuple[float, float], CounterKey]] = []
        for spec in specs:
            window = spec.window(now)
            if now >= window[1] or now < window[0]:
                continue  # a custom budget outside its window does not apply
            live.append((spec, window, (spec.scope, spec.subject, window[0], window[1])))
        keys = list(dict.fromkeys(key for _, _, key in live))
        caps = [(spec, window, key, spec.cap(now, window)) for spec, window, key in live]
        checks = [(key, cap) for spec, _, key, cap in caps if spec.kind != "soft"]
        return _Plan(now, live, keys, caps, checks)

    def _seed(self, plan: _Plan) -> None:
        for spec, window, key in plan.live:
            if not self.store.has(key):
                self._open(spec, key, window)

    def _reserved(
        self,
        plan: _Plan,
        estimated_cost: Decimal,
        failed: int | None,
        seen: list[tuple[Decimal, Decimal]] | None,
    ) -> Reservation:
        """The reservation (or the refusal) from what the store saw."""
        assert seen is not None
        caps, checks = plan.caps, plan.checks
        counters = dict(zip(plan.keys, seen, strict=True))
        pressure = 0.0
        warnings: list[str] = []
        for spec, _, key, cap in caps:
            spent, reserved = counters[key]
            used = spent + reserved + estimated_cost
            if spec.kind == "soft" and spent + reserved > cap:
                warnings.append(
                    f"{spec.label}: soft budget {_money(spec.limit_usd)} exceeded "
                    f"(spent {_money(spent)}, {_money(reserved)} in flight)"
                )
            p = _pressure(used, cap, spec.degrade_from)
            if p > pressure:
                pressure = p
        if failed is not None:
            hard = [(spec, window, cap) for spec, window, _, cap in caps if spec.kind != "soft"]
            spec, window, cap = hard[failed]
            key = checks[failed][0]
            raise self._refusal(spec, counters[key], window, cap, estimated_cost, plan.now)
        label = next((spec.label for spec, *_ in caps if spec.kind != "soft"), "")
        return Reservation(self.store, plan.keys, estimated_cost, pressure, warnings, checks, label)

    def pressure(self, ctx: BudgetContext) -> float:
        """Budget pressure for ``ctx`` without reserving anything (e.g. for a dry run)."""
        now = self.clock()
        out = 0.0
        for spec in self.applicable(ctx):
            window = spec.window(now)
            spent, reserved = self.store.get((spec.scope, spec.subject, window[0], window[1]))
            out = max(out, _pressure(spent + reserved, spec.cap(now, window), spec.degrade_from))
        return out

    def _open(self, spec: BudgetSpec, key: CounterKey, window: tuple[float, float]) -> None:
        """A counter seen for the first time: zero if this budget has been counted here since
        before its window began, otherwise its spend so far from the ledger (once)."""
        series = _series(spec)
        since = self._tracked.get(series)
        if since is None:
            since = self._tracked[series] = self.clock()
        if window[0] >= since or self.loader is None:
            self.store.seed(key, _ZERO)
            return
        loaded = self.loader([spec], self.clock())
        self.store.seed(key, loaded.get(key, _ZERO))

    def _refusal(
        self,
        spec: BudgetSpec,
        seen: tuple[Decimal, Decimal],
        window: tuple[float, float],
        cap: Decimal,
        estimate: Decimal,
        now: float,
    ) -> BudgetExceeded:
        """The 429 for ``spec``, from its counter as the refused reservation saw it
        (``seen``: spent, reserved; no second read of the store)."""
        spent, reserved = seen
        who = "global" if spec.scope == "global" else f"{spec.scope} {spec.subject!r}"
        period = spec.period if spec.period != "custom" else "custom-period"
        budget = f"{spec.kind} {period} budget of {_money(spec.limit_usd)}"
        retry_after: float | None = None
        if reserved > 0 and spent + estimate <= cap:
            # Only requests still in flight stand in the way: their reservations are settled
            # (usually for less) within seconds, so this refusal is temporary (issue 14, #8).
            return _in_flight_refusal(spec, who, budget, spent, reserved, estimate)
        if estimate > spec.limit_usd:
            # Waiting cannot help: even an empty period could not hold this request.
            msg = (
                f"Budget exceeded for {who}: this request alone needs about {_money(estimate)}, "
                f"more than the whole {budget}, so it can never fit. Ask for fewer tokens "
                "(max_tokens), send a shorter prompt or use a cheaper model."
            )
            wait = float("inf")
        else:
            wait = spec.seconds_until(spent + reserved + estimate, now, window)
            if spec.kind == "paced" and wait < window[1] - now:
                detail = (
                    f"paced budget allows {_money(cap)} so far of {_money(spec.limit_usd)} "
                    f"this {period}"
                )
            else:
                detail = budget
            msg = (
                f"Budget exceeded for {who}: {detail}; spent {_money(spent)}, "
                f"{_money(reserved)} in flight, this request needs about {_money(estimate)}."
            )
            if wait != float("inf"):
                retry_after = wait
                reset = datetime.fromtimestamp(now + wait, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                msg += f" Retry after {reset}."
            else:
                msg += " This budget has no period: it does not reset."
        headers = {
            "x-should-retry": "true" if wait <= _RETRYABLE_WAIT else "false",
            "x-modelmix-budget": spec.label,
        }
        return BudgetExceeded(msg, budget=spec.label, retry_after=retry_after, headers=headers)

    # -- reporting -------------------------------------------------------------------------

    def status(self, extra: Iterable[BudgetSpec] = ()) -> list[dict[str, Any]]:
        """Each budget's current window: limit, allowed so far, spent, in flight, remaining,
        pressure. ``extra``: key budgets to include (config budgets are always listed)."""
        now = self.clock()
        out: list[dict[str, Any]] = []
        for spec in [*self.configured, *extra]:
            window = spec.window(now)
            key = (spec.scope, spec.subject, window[0], window[1])
            spent, reserved = self.store.get(key)
            cap = spec.cap(now, window)
            out.append(
                {
                    "name": spec.label,
                    "scope": spec.scope,
                    "subject": spec.subject,
                    "kind": spec.kind,
                    "period": spec.period,
                    "window_start": window[0],
                    "window_end": None if window[1] == float("inf") else window[1],
                    "limit_usd": spec.limit_usd,
                    "allowed_usd": cap,
                    "spent_usd": spent,
                    "reserved_usd": reserved,
                    "remaining_usd": max(cap - spent - reserved, _ZERO),
                    "pressure": _pressure(spent + reserved, cap, spec.degrade_from),
                }
            )
        return out


#: Seconds a refusal caused by in-flight reservations alone asks the client to wait.
IN_FLIGHT_RETRY_AFTER = 1.0


def _in_flight_refusal(
    spec: BudgetSpec, who: str, budget: str, spent: Decimal, reserved: Decimal, estimate: Decimal
) -> BudgetExceeded:
    msg = (
        f"Budget busy for {who}: {budget}; spent {_money(spent)}, but {_money(reserved)} is "
        f"held by requests in flight and this request needs about {_money(estimate)}. "
        "The held amounts are settled as those requests finish: retry shortly."
    )
    headers = {"x-should-retry": "true", "x-modelmix-budget": spec.label}
    return BudgetExceeded(
        msg, budget=spec.label, retry_after=IN_FLIGHT_RETRY_AFTER, headers=headers
    )


def _series(spec: BudgetSpec) -> tuple[Any, ...]:
    return (spec.scope, spec.subject, spec.period, spec.start, spec.end)


def _pressure(used: Decimal, cap: Decimal, degrade_from: float) -> float:
    if cap <= 0:
        return 1.0
    share = float(used / cap)
    if share >= 1.0:
        return 1.0
    if share <= degrade_from:
        return 0.0
    return (share - degrade_from) / (1.0 - degrade_from)
