import pytest

from modelmix.bench import metrics


def test_frontier_drops_dominated_and_below_chord_points():
    pts = [(1.0, 0.5), (2.0, 0.55), (3.0, 0.9), (4.0, 0.8), (2.0, 0.4)]
    # (2, .55) lies below the chord from (1, .5) to (3, .9); (4, .8) is dominated.
    assert metrics.frontier(pts) == [(1.0, 0.5), (3.0, 0.9)]


def test_aiq_of_a_known_curve():
    # Linear from (0, 0) to (1, 1): average quality 0.5 over [0, 1].
    assert metrics.aiq([(0.0, 0.0), (1.0, 1.0)], 0.0, 1.0) == pytest.approx(0.5)
    # A flat router at 0.8 from cost 0.5 on: 0 below, 0.8 above (quality 0 before it starts).
    assert metrics.aiq([(0.5, 0.8)], 0.0, 1.0) == pytest.approx(0.4)
    # A floor point makes the region below reachable.
    assert metrics.aiq([(0.5, 0.8)], 0.0, 1.0, floor=(0.0, 0.8)) == pytest.approx(0.8)


def test_cost_and_quality_at():
    hull = metrics.frontier([(1.0, 0.5), (3.0, 0.9)])
    assert metrics.cost_at(hull, 0.7) == pytest.approx(2.0)
    assert metrics.quality_at(hull, 2.0) == pytest.approx(0.7)
    assert metrics.cost_at(hull, 0.95) is None
    assert metrics.quality_at(hull, 0.5) is None
    assert metrics.saving_at([(1.0, 0.5), (3.0, 0.9)], 0.7, 4.0) == pytest.approx(0.5)


def test_two_model_apgr_and_cpt():
    weak, strong = 0.5, 0.9
    # Random mixing only: PGR grows linearly, APGR 0.5, CPT(50%) = 50% of strong calls.
    assert metrics.apgr([], weak, strong) == pytest.approx(0.5)
    assert metrics.cpt([], weak, strong, 0.5) == pytest.approx(0.5)
    # A router recovering 80% of the gap with 20% strong calls.
    curve = [(0.2, 0.5 + 0.8 * 0.4)]
    assert metrics.cpt(curve, weak, strong, 0.8) == pytest.approx(0.2)
    assert metrics.cpt(curve, weak, strong, 0.5) == pytest.approx(0.125)
    # Area: triangle to (0.2, .82) then to (1, .9): PGR area = 0.08 + 0.8*0.9 = 0.8
    assert metrics.apgr(curve, weak, strong) == pytest.approx(0.8)
