from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from modelmix.budgets.config import BudgetsConfig
from modelmix.budgets.definitions import BudgetSpec, budget_from_dict, period_window
from modelmix.budgets.degrade import degrade_chain, degraded_quality_target


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_period_windows_are_utc_days_and_months() -> None:
    assert period_window("day", ts(2025, 3, 9, 23, 59)) == (ts(2025, 3, 9), ts(2025, 3, 10))
    assert period_window("month", ts(2024, 2, 29, 12)) == (ts(2024, 2, 1), ts(2024, 3, 1))
    assert period_window("month", ts(2024, 12, 31, 23)) == (ts(2024, 12, 1), ts(2025, 1, 1))
    assert period_window("day", ts(2024, 12, 31, 23)) == (ts(2024, 12, 31), ts(2025, 1, 1))
    assert period_window("total", 5.0) == (0.0, float("inf"))
    assert period_window("custom", 5.0, 1.0, 9.0) == (1.0, 9.0)


def test_paced_cap_grows_with_the_period() -> None:
    spec = BudgetSpec("global", "*", Decimal("30"), "paced", "day")
    day = period_window("day", ts(2025, 1, 1))
    assert spec.cap(day[0], day) == Decimal("1.5")  # default burst: 5 %
    assert spec.cap(day[0] + 43200, day) == Decimal("16.5")
    assert spec.cap(day[1] - 1, day) == Decimal("30")
    hard = BudgetSpec("global", "*", Decimal("30"), "hard", "day")
    assert hard.cap(day[0], day) == Decimal("30")


def test_budget_documents_round_trip_and_validate() -> None:
    spec = budget_from_dict(
        {"kind": "paced", "period": "day", "limit_usd": "2.5", "burst_usd": 0.5},
        scope="key",
        subject="key_1",
    )
    assert spec.limit_usd == Decimal("2.5") and spec.burst_usd == Decimal("0.5")
    assert budget_from_dict(spec.to_dict(), scope="key", subject="key_1") == spec
    custom = budget_from_dict(
        {"period": "custom", "limit_usd": 1, "start": "2025-06-01", "end": "2025-07-01"}
    )
    assert custom.start == ts(2025, 6, 1) and custom.scope == "key"
    for bad in (
        {"limit_usd": "-1"},
        {"limit_usd": "x"},
        {"limit_usd": "NaN"},
        {},
        {"limit_usd": 1, "kind": "strict"},
        {"limit_usd": 1, "period": "week"},
        {"limit_usd": 1, "period": "custom"},
        {"limit_usd": 1, "colour": "red"},
    ):
        with pytest.raises(ValueError):
            budget_from_dict(bad, scope="key", subject="k")


def test_config_section() -> None:
    cfg = BudgetsConfig.model_validate(
        {
            "global": [{"kind": "hard", "period": "month", "limit_usd": 500}],
            "teams": {"search": [{"kind": "soft", "period": "day", "limit_usd": "20"}]},
            "tags": {
                "project:x": [
                    {
                        "period": "custom",
                        "limit_usd": 50,
                        "start": "2025-06-01T00:00:00",
                        "end": "2025-07-01T00:00:00",
                    }
                ]
            },
            "rate_limits": {"keys_default": {"rpm": 60}, "models": {"gpt-4o": {"tpm": 1000}}},
        }
    )
    specs = cfg.specs()
    assert [(s.scope, s.subject, s.kind, s.period) for s in specs] == [
        ("global", "*", "hard", "month"),
        ("team", "search", "soft", "day"),
        ("tag", "project:x", "hard", "custom"),
    ]
    assert specs[2].start == ts(2025, 6, 1) and specs[2].end == ts(2025, 7, 1)
    assert cfg.model_limits()["gpt-4o"].tpm == 1000
    assert cfg.default_key_limit() is not None
    for bad in (
        {"global": [{"limit_usd": -1}]},
        {"global": [{"limit_usd": 1, "period": "custom"}]},
        {"global": [{"limit_usd": 1, "start": "2025-01-01"}]},
        {"global": [{"limit_usd": 1, "burst_usd": 1}]},
        {"teams": {"a": [{"limit_usd": 1, "kinds": "hard"}]}},
        {"rate_limits": {"models": {"m": {"rpm": 0}}}},
    ):
        with pytest.raises(ValidationError):
            BudgetsConfig.model_validate(bad)


def test_degrade_helpers() -> None:
    prices = {"a": Decimal("10"), "b": Decimal("1"), "c": Decimal("5"), "d": Decimal("0.1")}
    chain = ["a", "b", "c", "d"]
    assert degrade_chain(chain, prices, 0.0) == chain
    assert degrade_chain(chain, prices, 0.3) == ["b", "c", "d"]
    assert degrade_chain(chain, prices, 0.5) == ["b", "d"]
    assert degrade_chain(chain, prices, 1.0) == ["d"]
    assert degrade_chain(["x", "d"], prices, 0.1) == ["d"]  # unknown price: most expensive
    assert degraded_quality_target(0.95, 0.0) == 0.95
    assert degraded_quality_target(0.95, 1.0) == 0.5
    assert degraded_quality_target(0.9, 0.5, floor=0.7) == pytest.approx(0.8)
