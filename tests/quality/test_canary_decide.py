"""The canary's guardrails: decisions need evidence, and noise does not decide."""

from __future__ import annotations

import random

from modelmix.quality.canary import Arm, decide
from modelmix.quality.config import CanaryConfig

SETTINGS = CanaryConfig(min_samples=30, alpha=0.05, max_looks=10, error_margin=0.05)


def arm(n: int, quality: float, errors: int = 0, cost: float = 1e-4, seed: int = 0) -> Arm:
    rng = random.Random(seed)
    a = Arm(requests=n, errors=errors)
    for _ in range(n - errors):
        a.labelled += 1
        a.quality_sum += 1.0 if rng.random() < quality else 0.0
        a.costs.append(cost * (0.9 + 0.2 * rng.random()))
    return a


def test_too_few_samples_never_decide() -> None:
    verdict = decide(arm(10, 1.0), arm(10, 0.0), SETTINGS, 1)
    assert verdict.action == "continue"
    assert not any(t["enough_data"] for t in verdict.tests.values())


def test_a_worse_candidate_is_rolled_back() -> None:
    verdict = decide(arm(40, 1.0), arm(40, 0.1, seed=1), SETTINGS, 1)
    assert verdict.action == "rollback" and "quality" in verdict.reasons[0]


def test_errors_and_cost_roll_back() -> None:
    errors = decide(arm(100, 0.9), arm(100, 0.9, errors=30, seed=2), SETTINGS, 1)
    assert errors.action == "rollback" and any("error rate" in r for r in errors.reasons)
    cost = decide(arm(100, 0.9), arm(100, 0.9, cost=3e-4, seed=3), SETTINGS, 1)
    assert cost.action == "rollback" and any("cost per request" in r for r in cost.reasons)


def test_a_better_candidate_is_promoted_once_shown_non_inferior() -> None:
    early = decide(arm(30, 0.5), arm(30, 1.0, seed=4), SETTINGS, 1)
    assert early.action == "continue"  # quality is shown, the error rate is not yet
    assert early.tests["quality"]["passed"] and not early.tests["errors"]["passed"]
    late = decide(arm(80, 0.5), arm(80, 1.0, seed=4), SETTINGS, 2)
    assert late.action == "promote"


def test_equal_arms_do_not_trigger_a_rollback_by_chance() -> None:
    rollbacks = 0
    for seed in range(200):
        v = decide(arm(60, 0.8, seed=seed), arm(60, 0.8, seed=seed + 1000), SETTINGS, 1)
        rollbacks += v.action == "rollback"
    assert rollbacks <= 2  # level alpha/max_looks per look: about 0.5% per guardrail


def test_a_candidate_within_the_margin_is_not_rolled_back() -> None:
    # 2 points worse, margin 5: never "harm", however much data
    verdict = decide(arm(5000, 0.90, seed=5), arm(5000, 0.88, seed=6), SETTINGS, 1)
    assert verdict.action != "rollback"


def test_inconclusive_canaries_end_in_rollback() -> None:
    verdict = decide(arm(40, 0.8), arm(40, 0.78, seed=9), SETTINGS, SETTINGS.max_looks)
    assert verdict.action == "rollback" and "inconclusive" in verdict.reasons[0]
