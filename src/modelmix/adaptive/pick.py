"""Deployment choice among a model's healthy deployments: those with room (under their
``capacity``) first, then by the model's ``balance``: ``weighted`` (random by weight, as
before), ``least_busy`` (fewest in flight per unit of capacity, or of weight) or ``latency``
(lowest predicted time to first token; unknown ones first, so they get measured)."""

from __future__ import annotations

import random
from collections.abc import Sequence

from modelmix.adaptive.live import LiveStats
from modelmix.providers.base import Deployment


def pick_deployment(pool: Sequence[Deployment], live: LiveStats, rng: random.Random) -> Deployment:
    """One of ``pool`` (two or more deployments of one model)."""
    balance = pool[0].balance
    if balance == "weighted" and all(d.capacity is None for d in pool):
        return rng.choices(pool, weights=[d.weight for d in pool])[0]
    busy = {d.id: live.in_flight(d.id) for d in pool}
    roomy = [d for d in pool if d.capacity is None or busy[d.id] < d.capacity] or list(pool)
    if len(roomy) == 1:
        return roomy[0]
    if balance == "least_busy":
        return min(roomy, key=lambda d: busy[d.id] / (d.capacity or d.weight))
    if balance == "latency":

        def ttft(d: Deployment) -> float:
            t = live.estimate(d.id).ttft_ms
            return -1.0 if t is None else t

        return min(roomy, key=ttft)
    return rng.choices(roomy, weights=[d.weight for d in roomy])[0]
