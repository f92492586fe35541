"""The statistics the quality loop relies on: confidence intervals and two-sample tests.

Everything that compares qualities, costs or error rates (the eval matrix, offline replay, the
canary's guardrails, regression alarms) goes through these few functions, so "beyond noise"
means the same thing everywhere:

* ``wilson``: interval for a proportion (scores that are all 0 or 1);
* ``bootstrap_mean``: percentile bootstrap interval for a mean of any scores (seeded);
* ``mean_interval``: Wilson when the scores are binary, else bootstrap;
* ``two_proportion_z``, ``proportion_difference_z``, ``mean_difference_z``: z statistics of
  group B minus group A (pooled two-proportion test; Agresti-Caffo difference against a
  margin; Welch's test of means, optionally of a ratio);
* ``mann_whitney``: the rank test for a shift between two distributions (output lengths);
* ``paired_bootstrap``: intervals for two policies' means and their difference over the same
  requests (offline replay).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()


def z_quantile(p: float) -> float:
    """The standard normal quantile: ``z_quantile(0.975) ≈ 1.96``."""
    return _NORMAL.inv_cdf(p)


def normal_sf(z: float) -> float:
    """P(Z > z) for a standard normal Z (the one-sided p-value of ``z``)."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass(frozen=True, slots=True)
class Interval:
    mean: float
    lo: float
    hi: float
    n: int
    #: ``wilson``, ``bootstrap`` or ``none`` (no data).
    method: str


def wilson(k: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes out of ``n``."""
    if n <= 0:
        return 0.0, 1.0
    z = z_quantile(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean(
    values: Sequence[float], confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded: the same data give the same
    interval)."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return 0.0, 0.0
    if len(x) == 1 or float(x.min()) == float(x.max()):
        return float(x[0]), float(x[0])
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(means, [tail, 100 - tail])
    return float(lo), float(hi)


def is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean with its interval: Wilson for 0/1 scores, bootstrap otherwise."""
    n = len(values)
    if n == 0:
        return Interval(0.0, 0.0, 1.0, 0, "none")
    mean = float(sum(values) / n)
    if is_binary(values):
        lo, hi = wilson(sum(values), n, confidence)
        return Interval(mean, lo, hi, n, "wilson")
    lo, hi = bootstrap_mean(values, confidence)
    return Interval(mean, lo, hi, n, "bootstrap")


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0-100, linear interpolation), None without data."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=float), q))


def two_proportion_z(k_a: float, n_a: int, k_b: float, n_b: int) -> float:
    """z of p_B - p_A under the pooled null p_A = p_B (0 when undefined)."""
    if n_a <= 0 or n_b <= 0:
        return 0.0
    pooled = (k_a + k_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    diff = k_b / n_b - k_a / n_a
    if se == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / se


@dataclass(frozen=True, slots=True)
class Moments:
    n: int
    mean: float
    var: float  # sample variance (n - 1)

    @classmethod
    def of(cls, values: Sequence[float]) -> Moments:
        n = len(values)
        if n == 0:
            return cls(0, 0.0, 0.0)
        mean = float(sum(values) / n)
        var = float(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
        return cls(n, mean, var)


def mean_difference_z(a: Moments, b: Moments, delta: float = 0.0, scale: float = 1.0) -> float:
    """Welch z of ``mean_B - scale·mean_A - delta`` (0 when a group is empty).

    ``scale`` tests a ratio (is B's mean above 1.1 times A's?). A zero standard error (every value
    the same in both groups) gives ±inf when the difference is not zero: it is certain."""
    if a.n == 0 or b.n == 0:
        return 0.0
    se = math.sqrt(scale * scale * a.var / a.n + b.var / b.n)
    diff = b.mean - scale * a.mean - delta
    if se == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / se


def proportion_difference_z(
    k_a: float, n_a: int, k_b: float, n_b: int, delta: float = 0.0
) -> float:
    """z of ``p_B - p_A - delta`` with the Agresti-Caffo adjustment (one success and one
    failure added to each group), so a group with no failures yet is not taken as certain.

    For scores in [0, 1] that are not all 0 or 1, ``k`` is their sum: p(1 - p) bounds the
    variance of such scores from above, so the test stays conservative."""
    if n_a <= 0 or n_b <= 0:
        return 0.0
    pa, pb = (k_a + 1) / (n_a + 2), (k_b + 1) / (n_b + 2)
    se = math.sqrt(pa * (1 - pa) / (n_a + 2) + pb * (1 - pb) / (n_b + 2))
    return (pb - pa - delta) / se


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(z, two-sided p) of the Mann-Whitney U test that B's values tend to differ from A's;
    z > 0 when B's are larger. Normal approximation with the tie correction."""
    n_a, n_b = len(a), len(b)
    if n_a == 0 or n_b == 0:
        return 0.0, 1.0
    pooled = np.concatenate([np.asarray(a, dtype=float), np.asarray(b, dtype=float)])
    order = pooled.argsort(kind="mergesort")
    ranks = np.empty(len(pooled))
    sorted_vals = pooled[order]
    i = 0
    ties = 0.0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    u_b = float(ranks[n_a:].sum()) - n_b * (n_b + 1) / 2
    mu = n_a * n_b / 2
    n = n_a + n_b
    sigma2 = n_a * n_b / 12 * ((n + 1) - ties / (n * (n - 1)))
    if sigma2 <= 0:
        return 0.0, 1.0
    z = (u_b - mu) / math.sqrt(sigma2)
    return z, min(1.0, 2 * normal_sf(abs(z)))


@dataclass(frozen=True, slots=True)
class PairedEstimate:
    a: Interval
    b: Interval
    #: mean(b) - mean(a) with its interval.
    diff: Interval


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> PairedEstimate:
    """Bootstrap intervals for the means of ``a`` and ``b`` (the same units, e.g. one request
    under two policies) and for ``mean(b) - mean(a)``, resampling units jointly."""
    x = np.asarray(a, dtype=float)
    y = np.asarray(b, dtype=float)
    if len(x) != len(y):
        raise ValueError("paired samples must have the same length")
    n = len(x)
    if n == 0:
        empty = Interval(0.0, 0.0, 0.0, 0, "none")
        return PairedEstimate(empty, empty, empty)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    ma, mb = x[idx].mean(axis=1), y[idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100

    def interval(mean: float, draws: np.ndarray) -> Interval:
        lo, hi = np.percentile(draws, [tail, 100 - tail])
        return Interval(mean, float(lo), float(hi), n, "bootstrap")

    return PairedEstimate(
        interval(float(x.mean()), ma),
        interval(float(y.mean()), mb),
        interval(float(y.mean() - x.mean()), mb - ma),
    )
