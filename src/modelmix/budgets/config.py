"""The ``budgets:`` section of the YAML config (validated by pydantic at load time only).

    budgets:
      global:
        - {kind: hard, period: month, limit_usd: 500}
      teams:
        search:
          - {kind: soft, period: day, limit_usd: 20}
          - {kind: paced, period: month, limit_usd: 300, burst_usd: 15}
      tags:
        "project:atlas":
          - {kind: hard, period: custom, limit_usd: 50,
             start: "2025-06-01T00:00:00", end: "2025-07-01T00:00:00"}
      rate_limits:
        keys_default: {rpm: 600, tpm: 1000000}
        models:
          gpt-4o: {rpm: 100, tpm: 200000}
      completion_tokens_estimate: 256
      store: shared          # or memory: see below

Key budgets and key rate limits live on the keys (``modelmix keys create --budget ...``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from modelmix.budgets.definitions import BudgetSpec, Scope
from modelmix.budgets.limits import RateLimit

__all__ = ["BudgetConfig", "BudgetsConfig", "RateLimitConfig", "RateLimitsConfig"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class BudgetConfig(_Strict):
    kind: Literal["hard", "soft", "paced"] = "hard"
    period: Literal["day", "month", "custom", "total"] = "month"
    limit_usd: Decimal = Field(ge=0, allow_inf_nan=False)
    #: custom period bounds (naive times are UTC)
    start: datetime | None = None
    end: datetime | None = None
    burst_usd: Decimal | None = Field(default=None, ge=0, allow_inf_nan=False)
    degrade_from: float = Field(default=0.8, gt=0, le=1)
    name: str | None = None

    @model_validator(mode="after")
    def _custom(self) -> BudgetConfig:
        if self.period == "custom":
            if self.start is None or self.end is None:
                raise ValueError("period: custom needs start and end")
            if _ts(self.end) <= _ts(self.start):
                raise ValueError("end must be after start")
        elif self.start is not None or self.end is not None:
            raise ValueError("start/end are only allowed with period: custom")
        if self.burst_usd is not None and self.kind != "paced":
            raise ValueError("burst_usd is only allowed with kind: paced")
        return self

    def spec(self, scope: Scope, subject: str) -> BudgetSpec:
        return BudgetSpec(
            scope=scope,
            subject=subject,
            limit_usd=self.limit_usd,
            kind=self.kind,
            period=self.period,
            start=_ts(self.start) if self.start else None,
            end=_ts(self.end) if self.end else None,
            burst_usd=self.burst_usd,
            degrade_from=self.degrade_from,
            name=self.name or "",
        )


def _ts(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class RateLimitConfig(_Strict):
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)

    def limit(self) -> RateLimit:
        return RateLimit(rpm=self.rpm, tpm=self.tpm)


class RateLimitsConfig(_Strict):
    #: for keys without limits of their own
    keys_default: RateLimitConfig | None = None
    #: per portfolio model, shared by every key
    models: dict[str, RateLimitConfig] = Field(default_factory=dict)


class BudgetsConfig(_Strict):
    global_: list[BudgetConfig] = Field(default_factory=list, alias="global")
    teams: dict[str, list[BudgetConfig]] = Field(default_factory=dict)
    tags: dict[str, list[BudgetConfig]] = Field(default_factory=dict)
    rate_limits: RateLimitsConfig = Field(default_factory=RateLimitsConfig)
    #: completion tokens assumed for a request until answers from its route are seen
    completion_tokens_estimate: int = Field(default=256, ge=1)
    #: Hard and paced budgets reserve a request's worst case (budgets/worst_case.py): its
    #: max_tokens, else its models' max_output_tokens, else this many completion tokens.
    max_output_tokens_default: int = Field(default=4096, ge=1)
    #: Where spend and rate-limit counters live. ``shared``: a memory-mapped file beside the
    #: ledger, shared by every gateway process using that ledger (``serve --workers N``, or
    #: several gateways on one host). ``memory``: this process only (each process would
    #: enforce the limits on its own).
    store: Literal["shared", "memory"] = "shared"
    #: Counter slots in the shared file (spend windows + rate-limit buckets in use at once).
    shared_slots: int = Field(default=65536, ge=64, le=16_777_216)

    def specs(self) -> list[BudgetSpec]:
        out = [b.spec("global", "*") for b in self.global_]
        for team, budgets in self.teams.items():
            out += [b.spec("team", team) for b in budgets]
        for tag, budgets in self.tags.items():
            out += [b.spec("tag", tag) for b in budgets]
        return out

    def model_limits(self) -> dict[str, RateLimit]:
        return {name: c.limit() for name, c in self.rate_limits.models.items()}

    def default_key_limit(self) -> RateLimit | None:
        d = self.rate_limits.keys_default
        return d.limit() if d is not None else None
