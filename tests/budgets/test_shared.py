"""The shared counters file: the same semantics as the in-memory stores, across processes."""

from __future__ import annotations

import multiprocessing
import time
from decimal import Decimal
from pathlib import Path

import pytest

from modelmix.budgets import BudgetContext, BudgetExceeded, Budgets, BudgetSpec
from modelmix.budgets.limits import RateLimit, RateLimited, RateLimiter
from modelmix.budgets.shared import SharedBucketStore, SharedSpendStore, SharedTable, TableFull

D = Decimal
KEY = ("global", "*", 0.0, float("inf"))


def test_reserve_settle_get_seed(tmp_path: Path) -> None:
    table = SharedTable(tmp_path / "c", slots=64)
    store = SharedSpendStore(table)
    assert store.get(KEY) == (0, 0) and not store.has(KEY)
    assert store.reserve([KEY], [(KEY, D("1"))], D("0.6")) is None
    assert store.get(KEY) == (0, D("0.6"))
    assert store.reserve([KEY], [(KEY, D("1"))], D("0.5")) == 0  # 0.6 + 0.5 > 1: nothing done
    store.settle([KEY], D("0.6"), D("0.0000001234"))
    assert store.get(KEY) == (D("0.0000001234"), 0)
    store.seed(KEY, D("5"))  # exists already: kept
    other = ("team", "t", 0.0, 10.0)
    store.seed(other, D("0.25"))
    assert store.get(other) == (D("0.25"), 0)
    table.close()


def test_a_second_process_joins_and_a_cold_start_resets(tmp_path: Path) -> None:
    a = SharedTable(tmp_path / "c", slots=64)
    assert a.fresh
    SharedSpendStore(a).seed(KEY, D("3"))
    b = SharedTable(tmp_path / "c", slots=999)  # joins: the file's size wins
    assert not b.fresh and b.slots == 64
    assert SharedSpendStore(b).get(KEY) == (D("3"), 0)
    a.close()
    b.close()
    c = SharedTable(tmp_path / "c", slots=64)  # nobody else: a fresh table (seeded from the
    assert c.fresh and not SharedSpendStore(c).has(KEY)  # ledger by Budgets.initialise)
    c.close()


def test_full_table_drops_expired_windows_then_refuses(tmp_path: Path) -> None:
    table = SharedTable(tmp_path / "c", slots=64)
    store = SharedSpendStore(table)
    past = time.time() - 10
    for i in range(64):
        store.seed(("key", f"k{i}", 0.0, past), D(1))  # windows that have ended
    store.seed(KEY, D(2))  # full: the ended windows are dropped to make room
    assert store.get(KEY) == (D(2), 0) and not store.has(("key", "k1", 0.0, past))
    for i in range(63):
        store.seed(("key", f"live{i}", 0.0, float("inf")), D(1))
    with pytest.raises(TableFull, match=r"budgets\.shared_slots"):
        store.seed(("key", "one-too-many", 0.0, float("inf")), D(1))
    table.close()


def _hammer(path: str, n: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    table = SharedTable(path, slots=256)
    budgets = Budgets([BudgetSpec("global", "*", D("1.00"), "hard", "total")])
    budgets.store = SharedSpendStore(table)
    limiter = RateLimiter(store=SharedBucketStore(table))
    admitted = limited = 0
    for _ in range(n):
        try:
            r = budgets.check_and_reserve(BudgetContext(), D("0.01"))
        except BudgetExceeded:
            continue
        admitted += 1
        r.settle(D("0.01"))
        try:
            limiter.acquire("k", RateLimit(rpm=50), 1)
        except RateLimited:
            limited += 1
    out.put((admitted, limited))
    table.close()


def test_budget_and_rate_limit_hold_across_processes(tmp_path: Path) -> None:
    """Four processes race for one $1 budget in 1-cent steps and one 50 rpm key limit."""
    path = str(tmp_path / "c")
    holder = SharedTable(path, slots=256)  # keeps the table alive while workers come and go
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hammer, args=(path, 60, out)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    admitted = sum(a for a, _ in results)
    limited = sum(lim for _, lim in results)
    assert admitted == 100  # exactly the budget, never 4x it
    assert admitted - limited <= 50 + 2  # one bucket for all (a little refill while running)
    assert SharedSpendStore(holder).get(("global", "*", 0.0, float("inf"))) == (D("1.00"), 0)
    holder.close()
