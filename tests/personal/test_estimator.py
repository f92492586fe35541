"""The per-subject offset: identity without feedback, shrinkage towards the global router,
the cap, and the direction of the evidence."""

from __future__ import annotations

import math
import random

from modelmix.personal.estimator import estimate, logit, offset, shifted, sigmoid
from modelmix.personal.offsets import Offsets, personalise


def test_no_feedback_is_the_global_router() -> None:
    assert offset([], prior_strength=20, cap=1.0) == (0.0, 0.0)
    p = [0.3, 0.7, 0.9]
    assert shifted(p, 0.0) is p
    assert estimate("team:x", [], 20, 1.0).offset == 0.0


def test_feedback_that_agrees_with_the_predictions_moves_nothing() -> None:
    rng = random.Random(7)
    pairs = []
    for _ in range(4000):
        p = rng.uniform(0.2, 0.95)
        pairs.append((p, 1.0 if rng.random() < p else 0.0))
    d, _ = offset(pairs, prior_strength=20, cap=2.0)
    assert abs(d) < 0.1


def test_the_offset_recovers_a_known_shift_with_enough_feedback() -> None:
    rng = random.Random(3)
    true_shift = 0.8
    pairs = []
    for _ in range(5000):
        p = rng.uniform(0.3, 0.9)
        accept = sigmoid(logit(p) + true_shift)
        pairs.append((p, 1.0 if rng.random() < accept else 0.0))
    d, raw = offset(pairs, prior_strength=20, cap=2.0)
    assert d == raw
    assert abs(d - true_shift) < 0.12


def test_few_labels_are_shrunk_towards_zero_more_than_many() -> None:
    one_sided = [(0.6, 1.0)]
    small, _ = offset(one_sided * 3, prior_strength=20, cap=5.0)
    large, _ = offset(one_sided * 300, prior_strength=20, cap=5.0)
    weak_prior, _ = offset(one_sided * 3, prior_strength=1, cap=5.0)
    assert 0.0 < small < weak_prior
    assert small < large
    # strict users (they reject what the router expects them to accept) move the other way
    strict, _ = offset([(0.9, 0.0)] * 30, prior_strength=20, cap=5.0)
    assert strict < 0.0


def test_the_cap_bounds_how_far_one_subject_moves() -> None:
    d, raw = offset([(0.5, 1.0)] * 10_000, prior_strength=1, cap=0.75)
    assert d == 0.75
    assert raw > 3.0
    d, raw = offset([(0.5, 0.0)] * 10_000, prior_strength=1, cap=0.75)
    assert d == -0.75
    e = estimate("user:z", [(0.5, 1.0), (0.7, 0.0)], 20, 1.0)
    assert e.n == 2 and math.isclose(e.predicted, 0.6) and math.isclose(e.accepted, 0.5)


def test_shifted_moves_every_candidate_on_the_log_odds() -> None:
    p = [0.2, 0.5, 0.9]
    up = shifted(p, 1.0)
    assert all(u > q for u, q in zip(up, p, strict=True))
    assert all(math.isclose(logit(u) - logit(q), 1.0) for u, q in zip(up, p, strict=True))


def test_lookup_takes_the_most_specific_subject() -> None:
    table = Offsets({"team:t": 0.5, "key:k": -0.25, "user:u": 1.0, "tag:env:prod": 0.1})
    assert table.lookup("k", "t", ("user:u",)) == ("user:u", 1.0)
    assert table.lookup("k", "t", ("env:prod",)) == ("key:k", -0.25)
    assert table.lookup("other", "t", ()) == ("team:t", 0.5)
    assert table.lookup(None, None, ("env:prod",)) == ("tag:env:prod", 0.1)
    assert table.lookup(None, "nobody", ("user:v",)) is None
    assert Offsets().lookup("k", "t", ("user:u",)) is None


def test_personalise_notes_the_subject_in_the_decision() -> None:
    decision: dict[str, object] = {}
    p = [0.5]
    assert personalise(p, None, decision) is p and decision == {}
    assert personalise(p, ("team:t", 0.5), decision)[0] > 0.5
    assert decision == {"personal": {"subject": "team:t", "offset": 0.5}}
