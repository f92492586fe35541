"""Profile targets that hold on unseen categories: the grouped-fold profile table, the raised
threshold for unplaced prompts, and its use by a profile route."""

import dataclasses
import math

import numpy as np
import pytest

from modelmix.routing.learned import profile_shift, safety, shift
from modelmix.routing.learned.artifact import load_artifact
from modelmix.routing.learned.calibrate import PROFILE_GRID, train_artifact
from modelmix.routing.learned.safety import Option
from modelmix.routing.learned.strategy import LearnedStrategy
from tests.routing.test_learned import decide
from tests.routing.test_shift import many_categories

GRID = np.asarray(PROFILE_GRID)


def test_raise_threshold_closes_part_of_the_gap_to_one():
    assert profile_shift.raise_threshold(0.8, 0.0) == pytest.approx(0.8)
    assert profile_shift.raise_threshold(0.8, 0.5) == pytest.approx(0.9)
    assert profile_shift.raise_threshold(0.8, 1.0) == pytest.approx(1.0)


def profile_case(n=4000, seed=0):
    """Cheap model right on 80% of prompts, dear one on all; random folds separate the
    cheap model's failures sharply, grouped folds blur them on the unsure half."""
    rng = np.random.default_rng(seed)
    fail = rng.random(n) < 0.2
    S = np.c_[(~fail).astype(float), np.ones(n)]
    cost = np.tile([0.1, 1.0], (n, 1))
    sharp = np.where(fail, 0.3, 0.9) + rng.normal(0, 0.05, n)
    confidence = rng.random(n)
    blurred = np.where(confidence < 0.5, 0.75 + 0.2 * (sharp - 0.6), sharp)

    def held(q):
        return shift.Held(np.c_[np.clip(q, 0.01, 0.99), np.full(n, 0.95)], cost, confidence)

    return S, cost, held(sharp), held(blurred)


def test_fit_lifts_unplaced_thresholds_until_the_two_tables_agree():
    S, cost, random, grouped = profile_case()
    plain = profile_shift.fit(S, cost, random, random, GRID)
    assert plain.boost == 0.0 and plain.calibration.share == pytest.approx(plain.random)
    r0, _ = profile_shift.measure(S, cost, random, GRID, -1.0, 0.0)
    g0, _ = profile_shift.measure(S, cost, grouped, GRID, -1.0, 0.0)
    unlifted = shift._spread(r0.mean(axis=0), g0.mean(axis=0))
    fitted = profile_shift.fit(S, cost, random, grouped, GRID)
    assert fitted.boost in profile_shift.LIFTS and 0.0 < fitted.threshold < 1.0
    r, g = np.array(fitted.random), np.array(fitted.grouped)
    assert shift._spread(r, g) < unlifted
    assert fitted.calibration.share == pytest.approx(list((r + g) / 2))


@pytest.fixture(scope="module")
def trained():
    return train_artifact(many_categories(), folds=5)


def test_training_measures_the_grouped_profile_table_and_routes_use_it(trained, tmp_path):
    ps = trained.profile_shift
    assert ps is not None and len(ps.grouped) == len(PROFILE_GRID)
    assert trained.profile_target_calibration is ps.calibration
    path = tmp_path / "r.npz"
    trained.save(path)
    again = load_artifact(path)
    assert again.profile_shift is not None and again.profile_shift.as_dict() == ps.as_dict()
    profiles = trained.meta["model_quality"]
    for t in (0.85, 0.9, 0.95):
        route = LearnedStrategy("r", [], trained, quality_target=t, profiles=profiles)
        single = safety.singles(trained.meta, route.models)
        want = safety.choose(
            t, safety.options("profile", ps.calibration), single, prompts=trained.meta["prompts"]
        )
        if want is None:  # no do-no-harm choice: the mean table's threshold as asked
            assert route._threshold == pytest.approx(ps.calibration.knob_for(t))
        else:
            assert route.served == want.describe()


def test_profile_route_raises_the_threshold_of_an_unplaced_prompt(trained):
    profiles = {"small": 0.93, "large": 0.95}
    every = dataclasses.replace(
        trained,
        profile_shift=dataclasses.replace(trained.profile_shift, threshold=math.inf, boost=1.0),
    )
    text = many_categories().prompts[0]
    low = Option("profile", 0.6, 0.1, knob=0.5)  # at this threshold the small model qualifies
    model, decision = decide(
        LearnedStrategy("r", [], trained, profiles=profiles, setting=low), text
    )
    assert model == "small" and "unplaced" not in decision
    lifted = LearnedStrategy("r", [], every, profiles=profiles, setting=low)
    conf = lifted.predict_placed(text)[3]
    model, decision = decide(lifted, text)
    assert decision["unplaced"] == {"confidence": round(conf, 4), "lift": 1.0}
    assert model == "large"  # threshold 1: only the best candidate qualifies
    _, decision = decide(LearnedStrategy("r", [], every, profiles=profiles, wtp=1e-3), text)
    assert "unplaced" not in decision


def test_few_categories_train_no_grouped_profile_table():
    art = train_artifact(many_categories(cats=4), folds=5)
    assert art.profile_shift is None
    assert art.profile_target_calibration is art.profile_calibration
