"""How budget pressure steers routing toward cheaper models (pure functions, no I/O).

``pressure`` in [0, 1] comes from ``Reservation.pressure``: 0 while every budget is
comfortably below ``degrade_from`` of what it allows, 1 at the limit.

- Chains (fallback / rules routes): ``degrade_chain`` drops the most expensive candidates, a
  share ``pressure`` of them, keeping the order of the rest and always the cheapest one.
- Learned routes: ``degraded_quality_target`` lowers the quality target linearly towards
  ``floor`` (so the router accepts cheaper models that are predicted almost as good).
- Learned routes with a willingness to pay: ``degraded_wtp`` shrinks it towards nothing.
- Cascades: skip escalation to the strong tier once pressure reaches 1 (a staged cascade's
  price of quality shrinks like a willingness to pay, so it escalates less as pressure rises).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from modelmix.portfolio import ModelEntry

__all__ = ["degrade_chain", "degraded_quality_target", "degraded_wtp", "unit_prices"]


def unit_prices(portfolio: Mapping[str, ModelEntry], models: Sequence[str]) -> dict[str, Decimal]:
    """USD per input token + per output token of each model's first priced deployment (models
    without a price are left out: ``degrade_chain`` counts them as most expensive)."""
    out: dict[str, Decimal] = {}
    for m in models:
        entry = portfolio.get(m)
        if entry is None:
            continue
        price = next((d.price for d in entry.deployments if d.price is not None), None)
        if price is not None:
            out[m] = price.input_token + price.output_token
    return out


def degraded_wtp(wtp: float, pressure: float) -> float:
    """A willingness to pay (USD per unit of quality) shrunk linearly to nothing at pressure 1
    (the cheapest acceptable model then wins)."""
    if pressure <= 0.0:
        return wtp
    return max(wtp * (1.0 - min(pressure, 1.0)), 1e-12)


def degrade_chain(
    models: Sequence[str], unit_price: Mapping[str, Decimal], pressure: float
) -> list[str]:
    """``models`` without the ``ceil(pressure x (n - 1))`` most expensive ones (by
    ``unit_price``, e.g. USD per 1k blended tokens; unknown prices count as most expensive)."""
    if pressure <= 0.0 or len(models) <= 1:
        return list(models)
    drop_n = math.ceil(min(pressure, 1.0) * (len(models) - 1))
    inf = Decimal("Infinity")
    by_price = sorted(models, key=lambda m: unit_price.get(m, inf), reverse=True)
    dropped = set(by_price[:drop_n])
    return [m for m in models if m not in dropped]


def degraded_quality_target(target: float, pressure: float, floor: float = 0.5) -> float:
    """``target`` lowered towards ``floor`` as pressure rises (never raised)."""
    if pressure <= 0.0 or target <= floor:
        return target
    return target - (target - floor) * min(pressure, 1.0)
