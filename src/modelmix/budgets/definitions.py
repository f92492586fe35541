"""Budget definitions and their periods.

A budget caps the USD spent by one *scope* (a key, a team, a tag, or everything: ``global``)
over a *period*: a UTC day, a UTC month, a fixed custom window (start/end), or ``total`` (no
reset). Its *kind* says what happens as spend approaches the limit:

- ``hard``: a request whose estimated cost would take spend past the limit is refused.
- ``soft``: never refused; past ``limit`` a warning is raised, and from ``degrade_from`` of the
  limit on, a routing *pressure* in [0, 1] rises so routing can pick cheaper models.
- ``paced``: like hard, but the cap grows through the period: ``limit x elapsed share + burst``
  (at most ``limit``), so a burst early in the period cannot spend it all.

Every kind contributes pressure once its usage passes ``degrade_from`` (default 0.8) of what
it allows, so even hard budgets steer routing before they become a wall.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

__all__ = [
    "BudgetKind",
    "BudgetSpec",
    "Period",
    "Scope",
    "budget_from_dict",
    "period_window",
]

BudgetKind = Literal["hard", "soft", "paced"]
Period = Literal["day", "month", "custom", "total"]
Scope = Literal["key", "team", "tag", "global"]

KINDS: tuple[str, ...] = ("hard", "soft", "paced")
PERIODS: tuple[str, ...] = ("day", "month", "custom", "total")
SCOPES: tuple[str, ...] = ("key", "team", "tag", "global")

#: Default paced burst allowance, as a share of the limit.
DEFAULT_BURST_SHARE = Decimal("0.05")
_FOREVER = float("inf")


@dataclass(frozen=True, slots=True)
class BudgetSpec:
    """One budget. ``subject`` is the key id, team name or tag (``"*"`` for global)."""

    scope: Scope
    subject: str
    limit_usd: Decimal
    kind: BudgetKind = "hard"
    period: Period = "month"
    #: custom period bounds, unix seconds (required for ``custom``)
    start: float | None = None
    end: float | None = None
    #: paced only: extra allowance on top of the pro-rata share (default 5 % of the limit)
    burst_usd: Decimal | None = None
    #: pressure starts rising at this share of what the budget allows (1.0: never)
    degrade_from: float = 0.8
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"budget scope must be one of {', '.join(SCOPES)}")
        if self.kind not in KINDS:
            raise ValueError(f"budget kind must be one of {', '.join(KINDS)}")
        if self.period not in PERIODS:
            raise ValueError(f"budget period must be one of {', '.join(PERIODS)}")
        if not isinstance(self.limit_usd, Decimal) or self.limit_usd < 0:
            raise ValueError("budget limit_usd must be a Decimal >= 0")
        if self.period == "custom" and (
            self.start is None or self.end is None or self.end <= self.start
        ):
            raise ValueError("a custom budget period needs start < end")
        if self.burst_usd is not None and self.burst_usd < 0:
            raise ValueError("burst_usd must be >= 0")
        if not 0.0 < self.degrade_from <= 1.0:
            raise ValueError("degrade_from must be in (0, 1]")
        if not self.subject:
            raise ValueError("a budget needs a subject")

    @property
    def label(self) -> str:
        return self.name or f"{self.scope}:{self.subject}:{self.kind}:{self.period}"

    @property
    def burst(self) -> Decimal:
        if self.burst_usd is not None:
            return self.burst_usd
        return self.limit_usd * DEFAULT_BURST_SHARE

    def window(self, now: float) -> tuple[float, float]:
        return period_window(self.period, now, self.start, self.end)

    def cap(self, now: float, window: tuple[float, float]) -> Decimal:
        """What may be spent (and reserved) in the window at ``now``."""
        if self.kind != "paced":
            return self.limit_usd
        start, end = window
        if end == _FOREVER:
            return self.limit_usd
        if now <= start:
            return min(self.burst, self.limit_usd)
        if now >= end:
            return self.limit_usd
        allowed = self.limit_usd * Decimal(now - start) / Decimal(end - start) + self.burst
        return min(allowed, self.limit_usd)

    def seconds_until(self, needed: Decimal, now: float, window: tuple[float, float]) -> float:
        """Paced: seconds until the cap has grown to ``needed``; otherwise until the window
        ends (inf for ``total``)."""
        start, end = window
        if self.kind == "paced" and self.limit_usd > 0 and needed <= self.limit_usd:
            share = float((needed - self.burst) / self.limit_usd)
            at = start + max(share, 0.0) * (end - start)
            return max(at - now, 0.0)
        return end - now

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (money as a string); ``budget_from_dict`` reads it back."""
        d: dict[str, Any] = {
            "kind": self.kind,
            "period": self.period,
            "limit_usd": format(self.limit_usd, "f"),
        }
        if self.scope != "key":
            d["scope"] = self.scope
            d["subject"] = self.subject
        if self.start is not None:
            d["start"] = self.start
        if self.end is not None:
            d["end"] = self.end
        if self.burst_usd is not None:
            d["burst_usd"] = format(self.burst_usd, "f")
        if self.degrade_from != 0.8:
            d["degrade_from"] = self.degrade_from
        if self.name:
            d["name"] = self.name
        return d


def budget_from_dict(
    data: dict[str, Any], *, scope: Scope | None = None, subject: str | None = None
) -> BudgetSpec:
    """A ``BudgetSpec`` from JSON (as stored on a key or sent to the admin API).

    ``scope``/``subject`` given here win over the document's (a key's budgets are always
    about that key). Raises ``ValueError`` with a readable message."""
    if not isinstance(data, dict):
        raise ValueError("a budget must be an object")
    known = {
        "kind",
        "period",
        "limit_usd",
        "scope",
        "subject",
        "start",
        "end",
        "burst_usd",
        "degrade_from",
        "name",
    }
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown budget field(s): {', '.join(sorted(unknown))}")
    try:
        limit = Decimal(str(data["limit_usd"]))
    except KeyError:
        raise ValueError("a budget needs limit_usd") from None
    except ArithmeticError:
        raise ValueError("limit_usd must be a number") from None
    if not limit.is_finite():
        raise ValueError("limit_usd must be a finite number")
    burst = data.get("burst_usd")
    try:
        return BudgetSpec(
            scope=scope or data.get("scope", "key"),
            subject=subject or str(data.get("subject", "*")),
            limit_usd=limit,
            kind=data.get("kind", "hard"),
            period=data.get("period", "month"),
            start=_opt_float(data.get("start")),
            end=_opt_float(data.get("end")),
            burst_usd=None if burst is None else Decimal(str(burst)),
            degrade_from=float(data.get("degrade_from", 0.8)),
            name=str(data.get("name", "")),
        )
    except (TypeError, ArithmeticError) as exc:
        raise ValueError(f"invalid budget: {exc}") from None


def _opt_float(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC).timestamp()
    return float(value)


# -- periods ---------------------------------------------------------------------------------

#: The current day's and month's bounds, recomputed only when ``now`` leaves them, so the hot
#: path does two float comparisons instead of calendar arithmetic.
_day: tuple[float, float] = (0.0, 0.0)
_month: tuple[float, float] = (0.0, 0.0)


def _day_window(now: float) -> tuple[float, float]:
    global _day
    if not _day[0] <= now < _day[1]:
        d = datetime.fromtimestamp(now, UTC)
        start = datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()
        _day = (start, start + 86400.0)
    return _day


def _month_window(now: float) -> tuple[float, float]:
    global _month
    if not _month[0] <= now < _month[1]:
        d = datetime.fromtimestamp(now, UTC)
        start = datetime(d.year, d.month, 1, tzinfo=UTC).timestamp()
        days = calendar.monthrange(d.year, d.month)[1]
        _month = (start, start + days * 86400.0)
    return _month


def period_window(
    period: Period, now: float, start: float | None = None, end: float | None = None
) -> tuple[float, float]:
    """``(start, end)`` of the period containing ``now`` (UTC days and months)."""
    if period == "day":
        return _day_window(now)
    if period == "month":
        return _month_window(now)
    if period == "custom":
        assert start is not None and end is not None
        return (start, end)
    return (0.0, _FOREVER)
