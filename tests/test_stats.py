"""The quality loop's statistics against textbook values (checked with scipy once)."""

from __future__ import annotations

import math

import pytest

from modelmix.stats import (
    Moments,
    bootstrap_mean,
    mann_whitney,
    mean_difference_z,
    mean_interval,
    normal_sf,
    paired_bootstrap,
    percentile,
    proportion_difference_z,
    two_proportion_z,
    wilson,
    z_quantile,
)


def test_normal_helpers() -> None:
    assert z_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert normal_sf(1.959964) == pytest.approx(0.025, abs=1e-6)


def test_wilson_interval() -> None:
    assert wilson(8, 10) == pytest.approx((0.49016, 0.94332), abs=1e-5)
    lo, hi = wilson(0, 20)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.16113, abs=1e-5)
    assert wilson(0, 0) == (0.0, 1.0)


def test_mean_interval_picks_the_method() -> None:
    binary = mean_interval([1, 0, 1, 1])
    assert binary.method == "wilson" and binary.mean == 0.75 and binary.n == 4
    graded = mean_interval([0.7, 1.0, 0.0, 0.7, 1.0])
    assert graded.method == "bootstrap" and graded.lo < graded.mean < graded.hi
    assert mean_interval([]).method == "none"


def test_bootstrap_is_seeded_and_covers_the_mean() -> None:
    values = [0.1, 0.5, 0.9, 0.7, 0.3, 0.6]
    assert bootstrap_mean(values) == bootstrap_mean(values)
    lo, hi = bootstrap_mean(values)
    assert lo < sum(values) / len(values) < hi
    assert bootstrap_mean([0.4, 0.4]) == (0.4, 0.4)


def test_two_proportion_z() -> None:
    assert two_proportion_z(45, 100, 60, 100) == pytest.approx(2.12398, abs=1e-4)
    assert two_proportion_z(5, 5, 5, 5) == 0.0


def test_proportion_difference_never_certain_from_small_samples() -> None:
    # every answer good in both groups: no evidence either way at n=5, and no division by 0
    z = proportion_difference_z(5, 5, 5, 5, delta=-0.05)
    assert 0 < z < 1.0
    assert proportion_difference_z(100, 100, 0, 100) < -10


def test_welch_z_and_ratio() -> None:
    a, b = Moments.of([1.0, 2.0, 3.0]), Moments.of([2.0, 3.0, 4.0])
    assert mean_difference_z(a, b) == pytest.approx(1 / math.sqrt(2 / 3), abs=1e-9)
    same = Moments.of([1.0, 1.0])
    assert mean_difference_z(same, Moments.of([2.0, 2.0])) == math.inf
    assert mean_difference_z(same, Moments.of([2.0, 2.0]), scale=2.0) == 0.0


def test_mann_whitney_matches_scipy() -> None:
    z, p = mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert z > 0 and p == pytest.approx(0.0090234, abs=1e-6)
    _, p_ties = mann_whitney([1, 2, 2, 3], [2, 3, 3, 4])
    assert p_ties == pytest.approx(0.1291550, abs=1e-6)


def test_percentile_and_paired_bootstrap() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5 and percentile([], 50) is None
    est = paired_bootstrap([1, 0, 1, 1], [1, 1, 1, 1])
    assert est.a.mean == 0.75 and est.b.mean == 1.0 and est.diff.mean == 0.25
    assert est.diff.lo >= 0.0 and est.diff.hi <= 0.75
    with pytest.raises(ValueError):
        paired_bootstrap([1], [1, 2])
