"""The staged cascade: learned answer choice, the gain gate, and the live plan."""

import numpy as np
import pytest

from modelmix.bench.routing import simulate
from modelmix.routing.cascade import StagedCascadeStrategy
from modelmix.routing.learned.artifact import Calibration
from modelmix.routing.learned.calibrate import train_artifact
from modelmix.routing.learned.data import RoutingData
from modelmix.routing.learned.staged import StagedGate, support_masks
from modelmix.routing.learned.train_staged import (
    Replay,
    build_gate,
    build_plans,
    direct_stages,
    replay_rows,
    task_shares,
)
from modelmix.routing.needs import needs_of
from modelmix.types import ChatRequest
from tests.routing.test_cascade import drive, fixed
from tests.routing.test_learned import synthetic


def toy_gate() -> StagedGate:
    # Stage 0: cheap a, b. Stage 1: strong s. Positions: a=bit0, b=bit1, s=bit2.
    return StagedGate(
        stages=[["a", "b"], ["s"]],
        table={
            "x|0|3": [95.0, 100.0],  # a and b agree: right 95%
            "x|0|1": [40.0, 100.0],  # a alone
            "x|0|2": [30.0, 100.0],  # b alone
            "x|1|4": [80.0, 100.0],  # the strong model alone (a, b said something else)
            "x|1|3": [20.0, 100.0],  # a and b agree against the strong model
        },
        base={"x|0|1": [35.0, 100.0], "x|1|1": [50.0, 100.0]},
        ahead={"x|0|1": [[40.0, 100.0], [75.0, 100.0]], "x|0|3": [[95.0, 100.0], [96.0, 100.0]]},
        calibration=Calibration([-3.0, 0.0], [0.9, 1.0]),
    )


def test_support_masks_and_learned_answer_choice():
    assert support_masks(["4", None, "4", "5"]) == {"4": 0b101, "5": 0b1000}
    gate = toy_gate()
    top, p, mask = gate.current("x", 0, ["4", "4"])
    assert (top, mask) == ("4", 3) and p == pytest.approx((95 + 2 * 0.5) / 102)
    # Disagreement: a's answer is the more reliable one.
    assert gate.current("x", 0, ["4", "5"])[0] == "4"
    # After the strong model: it alone outvotes the two cheap models that agree.
    top, p, mask = gate.current("x", 1, ["4", "4", "7"])
    assert top == "7" and mask == 4 and p > 0.7
    assert gate.current("x", 1, [None, None, None]) == (None, 0.0, 0)


def test_gain_gate_prices_quality_against_cost():
    gate = toy_gate()
    p = gate.p_answer("x", 0, 1)
    # Going on would lift P(right) by ~0.35 at a predicted cost of 0.01 USD.
    assert gate.go_on("x", 0, 1, p, [0.01], lam=1.0)[0] is True
    assert gate.go_on("x", 0, 1, p, [0.01], lam=0.01)[0] is False
    # Agreement leaves little to gain: stop even at a high price of quality.
    p3 = gate.p_answer("x", 0, 3)
    assert gate.go_on("x", 0, 3, p3, [0.01], lam=0.2)[0] is False


def test_later_tokens_use_first_stage_lengths():
    gate = StagedGate(stages=[["a"], ["s"]], tokens={"s": [0.0, 0.0, 1.0, 0.0]})
    assert gate.later_tokens("s", 50.0, [99.0]) == pytest.approx(99.0)
    assert gate.later_tokens("s", 50.0, []) == 50.0
    assert gate.later_tokens("unknown", 50.0, [99.0]) == 50.0


def test_round_trip_of_gate_dict():
    gate = toy_gate()
    again = StagedGate.from_dict(gate.as_dict())
    assert again.as_dict() == gate.as_dict()
    gate.direct = toy_gate()
    again = StagedGate.from_dict(gate.as_dict())
    assert again.direct is not None and again.as_dict() == gate.as_dict()


def planned_gate() -> StagedGate:
    """Stages (a, b), tie-breaker t, strong s; the plan without t: (a, b), s. The tie-breaker
    rarely settles a disagreement (0.40 -> 0.45), the strong model does (0.40 -> 0.80)."""
    full = StagedGate(
        stages=[["a", "b"], ["t"], ["s"]],
        table={"x|0|1": [40.0, 100.0], "x|0|3": [95.0, 100.0]},
        ahead={"x|0|1": [[40.0, 100.0], [45.0, 100.0], [80.0, 100.0]]},
    )
    full.direct = StagedGate(
        stages=[["a", "b"], ["s"]],
        table={"x|0|1": [40.0, 100.0], "x|0|3": [95.0, 100.0]},
        ahead={"x|0|1": [[40.0, 100.0], [80.0, 100.0]]},
    )
    return full


def test_first_step_chooses_the_plan_with_the_larger_net_gain():
    gate = planned_gate()
    p = gate.p_answer("x", 0, 1)
    full_costs, direct_costs = [0.001, 0.01], [0.01]
    # Both plans end with the strong model; skipping the tie-breaker saves its cost.
    pick, gain = gate.first_step("x", 1, p, [full_costs, direct_costs], lam=1.0)
    assert pick == 1 and gain == pytest.approx(gate.direct.go_on("x", 0, 1, p, [0.01], 1.0)[1])
    # A price of quality under the strong model's cost per gain: neither plan, stop.
    pick, gain = gate.first_step("x", 1, p, [full_costs, direct_costs], lam=0.01)
    assert pick is None and gain <= 0.0
    # One plan only (no direct gate): the same decision as ``go_on``.
    gate.direct = None
    go, gain = gate.go_on("x", 0, 1, p, full_costs, 1.0)
    assert gate.first_step("x", 1, p, [full_costs], 1.0) == ((0 if go else None), gain)


def test_direct_plan_drops_stage_one_only_with_a_stage_after_it():
    assert direct_stages([[0, 1], [2], [3], [4]]) == [[0, 1], [3], [4]]
    assert direct_stages([[0, 1], [2]]) is None
    data = four_models()
    replay = Replay(data, list(data.categories), np.full((40, 4), 100.0))
    gate = build_plans(replay, [[0, 1], [2], [3]], np.arange(40), Calibration([0.0], [1.0]))
    assert gate.direct is not None and gate.direct.stages == [["a", "b"], ["s"]]
    # The first stage is the same in both plans: so are its tables.
    first = {k: v for k, v in gate.table.items() if k.split("|")[1] == "0"}
    assert first == {k: v for k, v in gate.direct.table.items() if k.split("|")[1] == "0"}


def four_models(n: int = 200, seed: int = 0) -> RoutingData:
    """Cheap voters a, b, a tie-breaker t and a strong model s. On hard prompts a and b are
    mostly wrong and t always is (it never settles anything there); s is right on 90%."""
    rng = np.random.default_rng(seed)
    base = synthetic(n=n, seed=seed)
    score, answers = [], []
    for i, cat in enumerate(base.categories):
        hard = cat == "hard"
        voters = [rng.random() < (0.3 if hard else 0.95) for _ in range(2)]
        ok = [*voters, not hard and rng.random() < 0.95, rng.random() < 0.9]
        score.append([float(x) for x in ok])
        answers.append(["ok" if x else f"w{i}-{j}" for j, x in enumerate(ok)])
    return RoutingData(
        ids=base.ids,
        categories=base.categories,
        prompts=base.prompts,
        models=["a", "b", "t", "s"],
        score=np.array(score),
        prompt_tokens=np.full((n, 4), 20.0),
        completion_tokens=np.tile([50.0, 50.0, 80.0, 200.0], (n, 1)),
        answers=answers,
        prices={
            "a": (1e-7, 4e-7),
            "b": (1e-7, 4e-7),
            "t": (5e-7, 2e-6),
            "s": (3e-6, 1.5e-5),
        },
    )


@pytest.fixture(scope="module")
def planned():
    data = four_models()
    return data, train_artifact(data, folds=4, stages=[["a", "b"], ["t"], ["s"]])


def test_live_plan_skips_the_tie_breaker_that_rarely_settles(planned):
    _data, art = planned
    assert art.staged is not None and art.staged.direct is not None
    s = StagedCascadeStrategy("c", art, lam=1.0)
    # Hard prompt, the voters disagree: the tie-breaker never settles that, so the gate goes
    # straight to the strong model.
    called, final, decision = drive(s, fixed(a="1", b="2", t="3", s="ok"), req(HARD))
    assert called == ["a", "b", "s"] and final.model == "s"
    assert "plan without stage 1" in decision["steps"][0]["next"]
    assert decision["steps"][0]["net_gain"] > 0


def test_offline_replay_matches_the_live_plan_with_two_plans(planned):
    """Training's replay chooses between the plans as the gateway's plan does."""
    data, art = planned
    gate = art.staged
    assert gate is not None
    stages = [[data.models.index(m) for m in st] for st in gate.stages]
    cats = [art.category_of(art.featurize(t)) for t in data.prompts]
    toks = np.array([art.predict(art.featurize(t))[1] for t in data.prompts], dtype=float)
    rows = np.arange(60)
    skipped = 0
    for lam in (1e-2, 3e-2, 1e-1, 1.0):  # (lower ones: do no harm serves one model)
        scores, costs = replay_rows(gate, Replay(data, cats, toks), stages, rows, [lam])
        s = StagedCascadeStrategy("c", art, lam=lam)
        assert s.single is None and s.served.startswith("cascade")
        for i in rows:
            score, spent, called, *_ = simulate(s, data, int(i), data.cost)
            skipped += "s" in called and "t" not in called
            assert score == scores[i, 0]
            assert spent == pytest.approx(costs[i, 0])
    assert skipped > 0  # the direct plan was taken on some prompts


@pytest.fixture(scope="module")
def trained():
    data = synthetic(n=160)
    return data, train_artifact(data, folds=4, voters=["small"])


EASY = "What is 12 plus 30?"
HARD = "Prove that the integral \\int_0^7 x^3 dx converges; use $\\lim$."


def req(text, stream=False):
    return ChatRequest(model="c", messages=[{"role": "user", "content": text}], stream=stream)


def test_trained_gate_escalates_only_when_worth_it(trained):
    _data, art = trained
    assert art.staged is not None and art.staged.stages == [["small"], ["large"]]
    assert art.category_of(art.featurize(EASY)) == "easy"
    assert art.category_of(art.featurize(HARD)) == "hard"
    s = StagedCascadeStrategy("c", art, lam=1.0)
    # Easy prompt, the small model answers: accepted.
    called, final, decision = drive(s, fixed(small="ok", large="ok"), req(EASY))
    assert called == ["small"] and final.model == "small" and decision["escalated"] is False
    # Hard prompt: the small model's answer is rarely right there, so the large one is called
    # and its answer returned.
    called, final, decision = drive(s, fixed(small="bad", large="ok"), req(HARD))
    assert called == ["small", "large"] and final.model == "large"
    assert decision["escalated"] is True and decision["steps"][0]["net_gain"] > 0
    # A price of quality near zero never pays for the large model.
    cheap = StagedCascadeStrategy("c", art, lam=1e-9)
    called, final, _ = drive(cheap, fixed(small="bad", large="ok"), req(HARD))
    assert called == ["small"] and final.model == "small"
    # No usable answer (a refusal) escalates whatever the knob.
    called, final, _ = drive(cheap, fixed(small=None, large="ok"), req(EASY))
    assert called == ["small", "large"] and final.model == "large"
    # Budget pressure shrinks the price of quality: at 1 the hard prompt is not escalated.
    decision: dict = {}
    plan = s.plan(req(HARD), needs_of(req(HARD), budget_pressure=1.0), decision)
    assert next(plan).model == "small"
    with pytest.raises(StopIteration) as stop:
        plan.send(fixed(small="bad", large="ok")["small"](None))
    assert stop.value.value.model == "small" and decision["escalated"] is False
    assert decision["budget_degraded"]["lam"] < 1.0


def test_streaming_sends_one_model(trained):
    _data, art = trained
    s = StagedCascadeStrategy("c", art, lam=1.0)
    called, final, decision = drive(s, fixed(small="ok", large="ok"), req(EASY, stream=True))
    assert called == ["large"] and final.model == "large" and decision["stream"]


def test_offline_replay_matches_the_live_plan(trained):
    """Training replays prompts through the same decisions the gateway's plan makes."""
    data, art = trained
    gate = art.staged
    assert gate is not None
    stages = [[data.models.index(m) for m in s] for s in gate.stages]
    cats = [art.category_of(art.featurize(t)) for t in data.prompts]
    toks = np.array([art.predict(art.featurize(t))[1] for t in data.prompts], dtype=float)
    rows = np.arange(40)
    for lam in (1e-6, 1e-3, 1.0):
        scores, costs = replay_rows(gate, Replay(data, cats, toks), stages, rows, [lam])
        s = StagedCascadeStrategy("c", art, lam=lam)
        for i in rows:
            score, spent, *_ = simulate(s, data, int(i), data.cost)
            assert score == scores[i, 0]
            assert spent == pytest.approx(costs[i, 0])


def test_quality_target_is_calibrated_on_held_back_prompts(trained):
    _data, art = trained
    fresh = synthetic(n=200, seed=3)
    best = fresh.score[:, 1].mean()
    for target in (0.9, 1.0):
        s = StagedCascadeStrategy("c", art, quality_target=target)
        q = np.mean([simulate(s, fresh, i, fresh.cost)[0] for i in range(len(fresh))])
        assert q / best >= target - 0.05


def test_build_gate_counts_only_given_rows():
    data = synthetic(n=40)
    replay = Replay(data, list(data.categories), np.full((40, 2), 100.0))
    gate = build_gate(replay, [[0], [1]], np.arange(10), Calibration([0.0], [1.0]))
    seen = sum(v[1] for k, v in gate.table.items() if k.split("|")[1] == "0")
    assert seen == sum(data.answers[i][0] is not None for i in range(10))


def test_route_config_builds_a_staged_cascade():
    from pydantic import ValidationError

    from modelmix.routing.route_config import CascadeRouteConfig, build_cascade

    cfg = CascadeRouteConfig(staged=True, quality_target=1.0)
    strategy = build_cascade("s", cfg, {})
    assert isinstance(strategy, StagedCascadeStrategy) and strategy.stages
    with pytest.raises(ValidationError):
        CascadeRouteConfig(voters=["a"], lam=0.1)  # lam needs staged: true
    with pytest.raises(ValidationError):
        CascadeRouteConfig()  # neither voters nor staged


def test_a_cascade_that_cannot_verify_is_not_offered():
    """Do no harm: on traffic without comparable answers (open-ended, as RouteLLM's MMLU
    file) the stages cannot verify, so the route makes one learned call and says so."""
    data = synthetic(n=160)
    data.answers = [[None, None] for _ in data.answers]
    art = train_artifact(data, folds=4, voters=["small"])
    assert art.meta["staged_verifiable"] == 0.0
    s = StagedCascadeStrategy("c", art, quality_target=0.95)
    assert s.single is not None and "cannot verify" in (s.safety_note or "")
    called, final, decision = drive(s, fixed(small=None, large=None), req(HARD))
    assert len(called) == 1 and final.model == called[0]  # no escalation through the stages
    assert decision["strategy"] == "cascade" and decision["do_no_harm"] == s.safety_note
    assert decision["candidates"]  # the learned router's explanation is kept


def test_task_shares_count_each_category_once():
    data = four_models()
    cats = np.array(data.categories)
    best = 3
    scores = np.c_[data.score[:, best], np.zeros(len(data))]
    shares = task_shares(data, scores, best)
    assert shares[0] == pytest.approx(1.0) and shares[1] == 0.0
    # half the best model's quality on one category, all of it on the others: the mean over
    # categories, not over prompts
    first = cats == cats[0]
    half = np.where(first, data.score[:, best] * 0.5, data.score[:, best])
    n_cats = len(set(data.categories))
    expected = (0.5 + (n_cats - 1)) / n_cats
    assert task_shares(data, half[:, None], best)[0] == pytest.approx(expected)


def test_trained_gate_keeps_its_task_calibration(planned):
    _data, art = planned
    gate = art.staged
    assert gate is not None and gate.task_calibration is not None
    assert gate.task_calibration.knob == gate.calibration.knob
    again = StagedGate.from_dict(gate.as_dict())
    assert again.task_calibration is not None
    assert again.task_calibration.share == gate.task_calibration.share
