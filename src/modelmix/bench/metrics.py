"""Cost-quality metrics of routers: hulls, AIQ, cost savings, APGR / CPT.

A router is a set of (cost, quality) points (one per knob setting). Mixing two settings at
random reaches any point between them, and a cheaper setting can always be used when more money
is allowed, so what a router can do at a budget is its *frontier*: the upper concave hull of its
points, made non-decreasing.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

Point = tuple[float, float]  # (cost, quality)


def frontier(points: Sequence[Point]) -> list[Point]:
    """Upper concave hull of the points, keeping only points that raise quality (by cost)."""
    pts = sorted(set(points))
    if not pts:
        return []
    best: list[Point] = []
    for c, q in pts:  # non-dominated, increasing in both
        if not best or q > best[-1][1]:
            if best and c == best[-1][0]:
                best[-1] = (c, q)
            else:
                best.append((c, q))
    hull: list[Point] = []
    for p in best:
        while len(hull) >= 2:
            (c1, q1), (c2, q2) = hull[-2], hull[-1]
            # drop the middle point if it lies on or below the chord
            if (q2 - q1) * (p[0] - c1) <= (p[1] - q1) * (c2 - c1):
                hull.pop()
            else:
                break
        hull.append(p)
    return hull


def quality_at(hull: Sequence[Point], cost: float) -> float | None:
    """Best quality reachable with at most ``cost`` (None below the cheapest point)."""
    if not hull or cost < hull[0][0]:
        return None
    for (c1, q1), (c2, q2) in itertools.pairwise(hull):
        if c1 <= cost <= c2:
            return q1 if c2 == c1 else q1 + (q2 - q1) * (cost - c1) / (c2 - c1)
    return hull[-1][1]


def cost_at(hull: Sequence[Point], quality: float) -> float | None:
    """Least cost reaching ``quality`` on the frontier (None if it never does)."""
    if not hull or quality > hull[-1][1]:
        return None
    if quality <= hull[0][1]:
        return hull[0][0]
    for (c1, q1), (c2, q2) in itertools.pairwise(hull):
        if q1 <= quality <= q2:
            return c1 if q2 == q1 else c1 + (c2 - c1) * (quality - q1) / (q2 - q1)
    return None


def aiq(points: Sequence[Point], lo: float, hi: float, floor: Point | None = None) -> float:
    """Average quality of the frontier over the cost range [lo, hi] (area / width).

    ``floor`` (e.g. the cheapest single model) is added to the points: any router can send
    everything there. Below the frontier's cheapest point the quality counts as 0.
    """
    hull = frontier([*points, *([floor] if floor else [])])
    if hi <= lo or not hull:
        return 0.0
    xs = sorted({lo, hi, *(c for c, _ in hull if lo < c < hi)})
    area = 0.0
    for a, b in itertools.pairwise(xs):
        qa = quality_at(hull, a)
        if qa is None:  # the router cannot work at this budget
            continue
        area += (qa + (quality_at(hull, b) or 0.0)) / 2 * (b - a)
    return area / (hi - lo)


def saving_at(points: Sequence[Point], quality: float, best_cost: float) -> float | None:
    """1 - (cost to reach ``quality`` on the frontier) / ``best_cost``; None if unreachable."""
    c = cost_at(frontier(points), quality)
    return None if c is None else 1.0 - c / best_cost


def pgr(quality: float, weak: float, strong: float) -> float:
    """Performance gap recovered."""
    return 0.0 if strong == weak else (quality - weak) / (strong - weak)


def apgr(curve: Sequence[Point], weak: float, strong: float) -> float:
    """Average PGR over the share of calls sent to the strong model (x in [0, 1]).

    ``curve`` holds (strong-call share, quality) points; (0, weak) and (1, strong) are added.
    """
    hull = frontier([*curve, (0.0, weak), (1.0, strong)])
    return pgr(_area(hull), weak, strong)


def _area(hull: Sequence[Point]) -> float:
    xs = sorted({0.0, 1.0, *(c for c, _ in hull if 0 < c < 1)})
    area = 0.0
    for a, b in itertools.pairwise(xs):
        area += ((quality_at(hull, a) or 0.0) + (quality_at(hull, b) or 0.0)) / 2 * (b - a)
    return area


def cpt(curve: Sequence[Point], weak: float, strong: float, target: float) -> float | None:
    """Least share of calls to the strong model that recovers ``target`` of the gap."""
    hull = frontier([*curve, (0.0, weak), (1.0, strong)])
    return cost_at(hull, weak + target * (strong - weak))
