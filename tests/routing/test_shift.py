"""Targets that hold on unseen categories: the grouped-fold table, its boost, and its use."""

import dataclasses
import math

import numpy as np
import pytest

from modelmix.routing.learned import shift
from modelmix.routing.learned.artifact import load_artifact
from modelmix.routing.learned.calibrate import train_artifact
from modelmix.routing.learned.data import RoutingData
from modelmix.routing.learned.safety import Option
from modelmix.routing.learned.strategy import LearnedStrategy
from tests.routing.test_learned import decide

KNOBS = np.linspace(-3.0, 1.0, 33)


def test_group_folds_keep_each_category_whole_and_need_enough_categories():
    cats = [f"c{i % 12}" for i in range(240)]
    fid = shift.group_folds(cats, 5, seed=0)
    assert fid is not None and set(fid) == set(range(5))
    for c in set(cats):
        assert len({int(f) for f, x in zip(fid, cats, strict=True) if x == c}) == 1
    assert shift.group_folds([f"c{i % 3}" for i in range(240)], 5, seed=0) is None


def two_model_case(n=4000, seed=0):
    """Weak model right on 80% of prompts, strong on 95%; the strong one helps exactly where
    ``gain`` is 1. Random folds score the gain sharply; grouped folds (unseen categories)
    score it blurred, on the half of the prompts whose category head is unsure."""
    rng = np.random.default_rng(seed)
    gain = (rng.random(n) < 0.2).astype(float)
    S = np.c_[1.0 - gain, np.where(rng.random(n) < 0.95, 1.0, 0.0)]
    S[gain == 0, 1] = 1.0
    cost = np.tile([0.1, 1.0], (n, 1))
    sharp = np.clip(0.3 + 0.6 * gain + rng.normal(0, 0.1, n), 0.01, 0.99)
    confidence = rng.random(n)
    unsure = confidence < 0.5
    blurred = np.where(unsure, 0.3 + 0.3 * (sharp - 0.3), sharp)  # smaller gain estimates

    def held(score):
        return shift.Held(np.c_[np.full(n, 0.5), 0.5 + score * 0.5], cost, confidence)

    return S, cost, held(sharp), held(blurred)


def test_fit_boosts_unplaced_prompts_until_the_two_tables_agree():
    S, cost, random, grouped = two_model_case()
    plain = shift.fit(S, cost, random, random, KNOBS)
    assert plain.boost == 0.0  # identical measurements: nothing to correct
    assert plain.calibration.share == pytest.approx(plain.random)
    # Without a boost the grouped folds fall short of the random ones at the same knob ...
    r0, _ = shift.measure(S, cost, random, KNOBS, -1.0, 0.0)
    g0, _ = shift.measure(S, cost, grouped, KNOBS, -1.0, 0.0)
    unboosted = np.max(np.abs(r0.mean(axis=0) - g0.mean(axis=0)) / S[:, 1].mean())
    # ... with the fitted threshold and boost they agree more closely, and the promise is
    # their mean, which neither one is far from.
    fitted = shift.fit(S, cost, random, grouped, KNOBS)
    assert fitted.boost > 0.0 and 0.0 < fitted.threshold < 1.0
    r, g = np.array(fitted.random), np.array(fitted.grouped)
    assert shift._spread(r, g) < unboosted
    assert fitted.calibration.share == pytest.approx(list((r + g) / 2))
    se, share = np.array(fitted.calibration.se), np.array(fitted.calibration.share)
    assert (se >= 0).all() and (se[share < 0.99] > 0).all()


def test_boost_only_under_the_threshold_and_round_trip():
    cal = shift.ShiftCalibration(0.3, 0.5, shift.Calibration([0.0], [1.0], [1.0]), [1.0], [1.0])
    assert cal.boost_for(0.1) == 0.5 and cal.boost_for(0.3) == 0.0
    again = shift.ShiftCalibration.from_dict(cal.as_dict())
    assert (again.threshold, again.boost, again.calibration.share) == (0.3, 0.5, [1.0])


def many_categories(n=600, cats=12, seed=0):
    """Prompts of ``cats`` topics (own words each); the small model fails on odd topics."""
    rng = np.random.default_rng(seed)
    prompts, categories, score = [], [], []
    for i in range(n):
        c = i % cats
        words = " ".join(f"topic{c}word{k}" for k in rng.integers(0, 6, size=4))
        prompts.append(f"{words} question {rng.integers(0, 1000)}?")
        categories.append(f"t{c}")
        small = float(rng.random() < (0.9 if c % 2 == 0 else 0.3))
        score.append([small, float(rng.random() < 0.95)])
    return RoutingData(
        ids=[f"p{i}" for i in range(n)],
        categories=categories,
        prompts=prompts,
        models=["small", "large"],
        score=np.array(score),
        prompt_tokens=np.full((n, 2), 20.0),
        completion_tokens=np.tile([50.0, 200.0], (n, 1)),
        answers=[[None, None] for _ in range(n)],
        prices={"small": (1e-7, 4e-7), "large": (3e-6, 1.5e-5)},
    )


@pytest.fixture(scope="module")
def trained():
    return train_artifact(many_categories(), folds=5)


def test_training_measures_the_grouped_table_and_targets_use_it(trained, tmp_path):
    sh = trained.shift
    assert sh is not None and len(sh.random) == len(trained.calibration.knob)
    assert trained.target_calibration is sh.calibration
    path = tmp_path / "r.npz"
    trained.save(path)
    again = load_artifact(path)
    assert again.shift is not None and again.shift.as_dict() == sh.as_dict()
    # A target route boosts a prompt its category head cannot place (here: every prompt,
    # by six decades, so the strong model wins); a wtp route never does.
    every = dataclasses.replace(
        trained, shift=dataclasses.replace(sh, threshold=math.inf, boost=6.0)
    )
    text = many_categories().prompts[0]  # an easy topic's training prompt
    cheap = Option("learned", 0.8, 0.1, knob=-4.5)  # at this wtp the small model wins
    model, decision = decide(LearnedStrategy("r", [], trained, setting=cheap), text)
    assert model == "small" and "unplaced" not in decision
    boosted = LearnedStrategy("r", [], every, setting=cheap)
    conf = boosted.predict_placed(text)[3]
    model, decision = decide(boosted, text)
    assert decision["unplaced"] == {"confidence": round(conf, 4), "boost": 6.0}
    assert model == "large"
    _, decision = decide(LearnedStrategy("r", [], every, wtp=10**-4.5), text)
    assert "unplaced" not in decision


def test_few_categories_train_no_grouped_table():
    data = many_categories(cats=4)
    art = train_artifact(data, folds=5)
    assert art.shift is None and art.target_calibration is art.calibration


def test_target_routes_serve_from_the_grouped_table(trained):
    from modelmix.routing.cascade import StagedCascadeStrategy
    from modelmix.routing.learned import safety

    # a grouped table that promises 5 points less than the random folds at every knob
    plain = trained.calibration
    lower = shift.Calibration(
        plain.knob, [x - 0.05 for x in plain.share], plain.cost_share, plain.se
    )
    art = dataclasses.replace(
        trained, shift=shift.ShiftCalibration(-1e9, 0.0, lower, plain.share, lower.share)
    )
    single = safety.singles(art.meta)
    prompts = art.meta["prompts"]
    differ = 0
    for t in (0.85, 0.9, 0.95):
        want = safety.choose(t, safety.options("learned", lower), single, prompts=prompts)
        old = safety.choose(t, safety.options("learned", plain), single, prompts=prompts)
        differ += want.describe() != old.describe()
        learned = LearnedStrategy("r", art.models, art, quality_target=t)
        assert learned.served == want.describe()
        # the cascade cannot verify here (no answers): its one learned call, the same table
        cascade = StagedCascadeStrategy("c", art, quality_target=t)
        assert cascade.served == f"one learned call ({want.describe()})"
        # a raw wtp is judged on the random folds' table
        raw = LearnedStrategy("r", art.models, art, wtp=10**-2.0)
        assert raw.served == LearnedStrategy("r", art.models, trained, wtp=10**-2.0).served
    assert differ  # the two tables lead to different settings: the test tells them apart
