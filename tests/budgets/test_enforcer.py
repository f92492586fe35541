from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from modelmix.budgets import BudgetContext, BudgetExceeded, Budgets, BudgetSpec
from modelmix.budgets.ledger_spend import ledger_spend_loader, request_tags
from modelmix.ledger.records import RequestRecord
from modelmix.ledger.sqlite import SqliteLedger

D = Decimal
T0 = datetime(2025, 6, 10, 12, 0, tzinfo=UTC).timestamp()
DAY0 = datetime(2025, 6, 10, tzinfo=UTC).timestamp()
MONTH0 = datetime(2025, 6, 1, tzinfo=UTC).timestamp()


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def g(limit: str, kind: str = "hard", period: str = "month", **kw: object) -> BudgetSpec:
    return BudgetSpec("global", "*", D(limit), kind, period, **kw)  # type: ignore[arg-type]


def test_hard_budget_refuses_with_a_429_the_sdks_understand() -> None:
    budgets = Budgets([g("1.00")], clock=Clock())
    ctx = BudgetContext()
    r = budgets.check_and_reserve(ctx, D("0.60"))
    r.settle(D("0.70"))
    budgets.check_and_reserve(ctx, D("0.30")).settle(D("0.30"))  # exactly at the limit: ok
    with pytest.raises(BudgetExceeded) as info:
        budgets.check_and_reserve(ctx, D("0.01"))
    err = info.value
    assert err.status == 429 and err.code == "budget_exceeded"
    assert "global" in err.message and "$1" in err.message and "spent $1" in err.message
    assert err.headers["x-should-retry"] == "false"  # resets next month: do not retry now
    assert err.retry_after == pytest.approx(datetime(2025, 7, 1, tzinfo=UTC).timestamp() - T0)
    # a zero estimate (unknown price) is refused too once the limit is reached
    with pytest.raises(BudgetExceeded):
        budgets.check_and_reserve(ctx, D(0))
    status = budgets.status()[0]
    assert status["spent_usd"] == D("1.00") and status["remaining_usd"] == 0


def test_a_request_bigger_than_the_whole_budget_is_told_it_can_never_fit() -> None:
    budgets = Budgets([g("1.00", period="day")], clock=Clock())
    with pytest.raises(BudgetExceeded) as info:
        budgets.check_and_reserve(BudgetContext(), D("1.50"))
    err = info.value
    assert "can never fit" in err.message and "max_tokens" in err.message
    assert "Retry after" not in err.message  # no reset would let it through
    assert err.retry_after is None and err.headers["x-should-retry"] == "false"
    total = Budgets([g("1.00", period="total")], clock=Clock())
    total.check_and_reserve(BudgetContext(), D("1")).settle(D("1"))
    with pytest.raises(BudgetExceeded) as info:
        total.check_and_reserve(BudgetContext(), D("0.01"))
    assert "does not reset" in info.value.message and info.value.retry_after is None


def test_a_refusal_reserves_nothing_anywhere() -> None:
    budgets = Budgets([g("10"), BudgetSpec("team", "a", D("1"), "hard", "day")], clock=Clock())
    ctx = BudgetContext(team="a")
    with pytest.raises(BudgetExceeded):
        budgets.check_and_reserve(ctx, D("2"))
    assert all(s["reserved_usd"] == 0 for s in budgets.status())
    # another team is not affected by team a's budget
    budgets.check_and_reserve(BudgetContext(team="b"), D("2")).release()


def test_scopes_key_team_tag_and_global_all_count() -> None:
    specs = [
        g("100"),
        BudgetSpec("team", "search", D("5"), "hard", "day"),
        BudgetSpec("tag", "project:x", D("3"), "hard", "day"),
    ]
    budgets = Budgets(specs, clock=Clock())
    key_budget = BudgetSpec("key", "key_1", D("2"), "hard", "day")
    ctx = BudgetContext("key_1", "search", ("project:x",), (key_budget,))
    budgets.check_and_reserve(ctx, D("1.5")).settle(D("1.5"))
    with pytest.raises(BudgetExceeded) as info:  # the key's own budget is the tightest
        budgets.check_and_reserve(ctx, D("1"))
    assert "key 'key_1'" in info.value.message
    other = BudgetContext("key_2", "search", ("project:x",))
    budgets.check_and_reserve(other, D("1.5")).settle(D("1.5"))
    with pytest.raises(BudgetExceeded) as info:  # tag: 3.0 spent of 3
        budgets.check_and_reserve(other, D("0.1"))
    assert "tag 'project:x'" in info.value.message
    spent = {s["name"]: s["spent_usd"] for s in budgets.status([key_budget])}
    assert spent == {
        "global:*:hard:month": D("3.0"),
        "team:search:hard:day": D("3.0"),
        "tag:project:x:hard:day": D("3.0"),
        "key:key_1:hard:day": D("1.5"),
    }


def test_soft_budget_warns_and_raises_pressure_but_never_refuses() -> None:
    budgets = Budgets([BudgetSpec("team", "t", D("10"), "soft", "day")], clock=Clock())
    ctx = BudgetContext(team="t")
    pressures = []
    for _ in range(14):
        r = budgets.check_and_reserve(ctx, D("1"))
        pressures.append(r.pressure)
        r.settle(D("1"))
    assert pressures[:7] == [0.0] * 7  # up to 8/10 used (degrade_from 0.8): no pressure
    assert 0.0 < pressures[8] < 1.0  # 9/10
    assert pressures[9:] == [1.0] * 5
    assert pressures == sorted(pressures)
    r = budgets.check_and_reserve(ctx, D("1"))
    assert r.warnings and "soft budget $10 exceeded (spent $14, $0 in flight)" in r.warnings[0]
    at_limit = Budgets([BudgetSpec("team", "t", D("10"), "soft", "day")], clock=Clock())
    at_limit.check_and_reserve(ctx, D("9.5")).settle(D("9.5"))
    nearly = at_limit.check_and_reserve(ctx, D("1"))  # would pass it: full pressure, no warning
    assert nearly.pressure == 1.0 and nearly.warnings == []
    (warning,) = at_limit.check_and_reserve(ctx, D("1")).warnings  # 10.5 in flight + spent
    assert "soft budget $10 exceeded (spent $9.5, $1 in flight)" in warning
    assert budgets.pressure(ctx) == 1.0


def test_hard_budget_pressure_rises_before_the_wall() -> None:
    budgets = Budgets([g("10")], clock=Clock())
    ctx = BudgetContext()
    budgets.check_and_reserve(ctx, D(0)).settle(D("8.5"))
    r = budgets.check_and_reserve(ctx, D("0.5"))
    assert r.pressure == pytest.approx(0.5)
    assert not r.warnings


def test_paced_budget_over_a_simulated_day() -> None:
    clock = Clock(DAY0)
    spec = BudgetSpec("global", "*", D("24"), "paced", "day", burst_usd=D("2"))
    budgets = Budgets([spec], clock=clock)
    ctx = BudgetContext()
    # at midnight only the burst is allowed
    budgets.check_and_reserve(ctx, D("2")).settle(D("2"))
    with pytest.raises(BudgetExceeded) as info:
        budgets.check_and_reserve(ctx, D("0.5"))
    err = info.value
    assert "paced budget allows $2 so far of $24" in err.message
    # $1 per hour: 2.5 needs 0.5 h of pacing
    assert err.retry_after == pytest.approx(1800, rel=1e-6)
    assert err.headers["x-should-retry"] == "false"  # 30 min is too long for an SDK retry
    # spend evenly all day: hourly requests of $1 always pass
    for hour in range(1, 23):
        clock.now = DAY0 + hour * 3600
        budgets.check_and_reserve(ctx, D("1")).settle(D("1"))
    # the burst allowance never lifts the cap above the limit: 24 spent by 23:30
    clock.now = DAY0 + 23.5 * 3600
    with pytest.raises(BudgetExceeded) as info:
        budgets.check_and_reserve(ctx, D("0.5"))
    assert "paced day budget of $24" in info.value.message
    assert budgets.status()[0]["spent_usd"] == D("24")  # 2 + 22 x 1
    # the next day starts afresh
    clock.now = DAY0 + 86400 + 60
    budgets.check_and_reserve(ctx, D("2")).settle(D("2"))


def test_paced_short_wait_lets_the_sdk_retry() -> None:
    clock = Clock(DAY0 + 3600)
    budgets = Budgets([g("86400", "paced", "day", burst_usd=D("0"))], clock=clock)
    budgets.check_and_reserve(BudgetContext(), D("3600")).settle(D("3600"))
    with pytest.raises(BudgetExceeded) as info:
        budgets.check_and_reserve(BudgetContext(), D("10"))  # $1/s: 10 s away
    assert info.value.retry_after == pytest.approx(10.0)
    assert info.value.headers["x-should-retry"] == "true"


def test_custom_period_applies_only_inside_its_window() -> None:
    clock = Clock(T0)
    spec = g("1", period="custom", start=T0 + 100, end=T0 + 200)
    budgets = Budgets([spec], clock=clock)
    budgets.check_and_reserve(BudgetContext(), D("5")).settle(D("5"))  # before: not counted
    clock.now = T0 + 150
    with pytest.raises(BudgetExceeded):
        budgets.check_and_reserve(BudgetContext(), D("2"))
    clock.now = T0 + 250
    budgets.check_and_reserve(BudgetContext(), D("5")).settle(D("5"))


def test_settle_is_idempotent_and_release_frees_the_reservation() -> None:
    budgets = Budgets([g("1")], clock=Clock())
    r = budgets.check_and_reserve(BudgetContext(), D("0.9"))
    with pytest.raises(BudgetExceeded):
        budgets.check_and_reserve(BudgetContext(), D("0.2"))  # 0.9 in flight
    r.release()
    r.settle(D("5"))  # ignored: already settled
    assert budgets.status()[0]["spent_usd"] == 0
    budgets.check_and_reserve(BudgetContext(), D("1")).settle(D("1"))


@pytest.mark.parametrize("overrun", [False, True])
async def test_concurrent_overspend_is_bounded_by_what_is_in_flight(overrun: bool) -> None:
    rng = random.Random(1234 + overrun)
    limit = D("5.00")
    budgets = Budgets(
        [g(str(limit)), BudgetSpec("team", "t", D("3.00"), "hard", "month")], clock=Clock()
    )
    ctx = BudgetContext(team="t")
    in_flight: dict[int, Decimal] = {}  # task -> its overrun (actual - estimate, >= 0)
    bound_at_admission: list[Decimal] = []
    admitted = refused = 0
    spent_total = D(0)

    async def one(i: int) -> None:
        nonlocal admitted, refused, spent_total
        await asyncio.sleep(rng.random() * 0.01)
        estimate = D(rng.randint(1, 200)) / 1000
        actual = estimate * D(rng.randint(0, 200 if overrun else 100)) / 100
        try:
            r = budgets.check_and_reserve(ctx, estimate)
        except BudgetExceeded:
            refused += 1
            return
        admitted += 1
        in_flight[i] = max(actual - estimate, D(0))
        bound_at_admission.append(sum(in_flight.values(), D(0)))
        try:
            await asyncio.sleep(rng.random() * 0.02)
        finally:
            del in_flight[i]
            r.settle(actual)
            spent_total += actual

    await asyncio.gather(*(one(i) for i in range(600)))
    team = next(s for s in budgets.status() if s["scope"] == "team")
    assert team["spent_usd"] == spent_total
    assert team["reserved_usd"] == 0
    assert refused > 0 and admitted > 20
    # the final spend exceeds the limit by at most the overruns of the calls in flight at the
    # last admission (bounded by the largest in-flight overrun sum seen at any admission)
    allowed_over = max(bound_at_admission)
    assert spent_total <= D("3.00") + allowed_over
    if not overrun:
        assert spent_total <= D("3.00")  # exact estimates or better: never over
    assert spent_total > D("3.00") - D("0.2") - (0 if overrun else D("3.00"))


async def test_many_concurrent_zero_estimates_overspend_by_at_most_the_in_flight_cost() -> None:
    budgets = Budgets([g("1")], clock=Clock())
    gate = asyncio.Event()
    costs = [D("0.3")] * 10

    async def call(cost: Decimal) -> bool:
        try:
            r = budgets.check_and_reserve(BudgetContext(), D(0))
        except BudgetExceeded:
            return False
        await gate.wait()
        r.settle(cost)
        return True

    tasks = [asyncio.ensure_future(call(c)) for c in costs]
    await asyncio.sleep(0)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert all(results)  # nothing known in advance: all 10 were in flight together
    spent = budgets.status()[0]["spent_usd"]
    assert spent == D("3.0")  # = limit + in-flight overshoot, and from now on:
    with pytest.raises(BudgetExceeded):
        budgets.check_and_reserve(BudgetContext(), D(0))


def _rec(
    i: int, at: float, cost: str, key: str | None, team: str | None, tags: list[str]
) -> RequestRecord:
    return RequestRecord(
        id=f"r{i}",
        started_at=at,
        api="openai",
        requested_model="m",
        key_id=key,
        cost_usd=D(cost),
        team=team,
        tags=tuple(tags),
    )


def test_spend_is_initialised_from_the_ledger_so_a_restart_keeps_budgets(tmp_path: Path) -> None:
    db = tmp_path / "ledger.db"
    with SqliteLedger(db) as ledger:
        ledger.record(_rec(1, T0 - 60, "0.40", "key_a", "search", ["project:x"]))
        ledger.record(_rec(2, T0 - 30, "0.35", "key_b", "search", []))
        ledger.record(_rec(3, DAY0 - 10, "1.00", "key_a", "search", ["project:x"]))  # yesterday
        ledger.record(_rec(4, MONTH0 - 10, "9.00", "key_a", "search", []))  # last month
        ledger.record(_rec(5, T0 - 5, "0.000000001", None, None, ["project:x"]))
    clock = Clock()
    specs = [
        g("10"),
        BudgetSpec("team", "search", D("0.80"), "hard", "day"),
        BudgetSpec("tag", "project:x", D("5"), "soft", "month"),
    ]
    key_a_budget = BudgetSpec("key", "key_a", D("1.50"), "hard", "month")
    budgets = Budgets(specs, clock=clock)
    budgets.initialise(ledger_spend_loader(db), [key_a_budget])
    spent = {s["name"]: s["spent_usd"] for s in budgets.status([key_a_budget])}
    assert spent == {
        "global:*:hard:month": D("1.750000001"),
        "team:search:hard:day": D("0.75"),
        "tag:project:x:soft:month": D("1.400000001"),
        "key:key_a:hard:month": D("1.40"),
    }
    with pytest.raises(BudgetExceeded):  # 0.75 + 0.10 > 0.80 for the team today
        budgets.check_and_reserve(BudgetContext("key_b", "search"), D("0.10"))
    with pytest.raises(BudgetExceeded):  # the key's month: 1.40 + 0.2 > 1.50
        budgets.check_and_reserve(BudgetContext("key_a", None, (), (key_a_budget,)), D("0.2"))
    # a budget that appears later (key updated) loads its spend from the ledger once
    new = BudgetSpec("key", "key_b", D("0.40"), "hard", "month")
    with pytest.raises(BudgetExceeded):
        budgets.check_and_reserve(BudgetContext("key_b", None, (), (new,)), D("0.10"))


def test_request_tags() -> None:
    tags = request_tags(("team-wide",), {"feature": "chat", "tags": "a, b,,a"}, user="u1")
    assert tags == ("team-wide", "feature:chat", "a", "b", "user:u1")


def test_a_refusal_caused_by_requests_in_flight_is_retryable() -> None:
    """Issue 14, finding 8: with little spent and the rest held by in-flight reservations, a
    budget with no period must not say "does not reset" / x-should-retry: false."""
    budgets = Budgets([g("1.00", period="total")], clock=Clock())
    ctx = BudgetContext()
    budgets.check_and_reserve(ctx, D("0.10")).settle(D("0.095"))
    held = budgets.check_and_reserve(ctx, D("0.85"))  # in flight
    with pytest.raises(BudgetExceeded) as info:
        budgets.check_and_reserve(ctx, D("0.10"))
    err = info.value
    assert err.status == 429
    assert err.headers["x-should-retry"] == "true"
    assert err.retry_after is not None and 0 < err.retry_after <= 5
    assert "does not reset" not in err.message and "in flight" in err.message
    held.settle(D("0.05"))  # the held request finished cheaper: the retry fits
    budgets.check_and_reserve(ctx, D("0.10"))
