"""The answer-blind cascade: its gate's features, training, calibration and the live plan."""

import numpy as np
import pytest

from modelmix.bench.blind_rows import BLIND
from modelmix.bench.routing import run_benchmark, simulate, summary
from modelmix.routing.learned import safety
from modelmix.routing.learned.artifact import load_artifact
from modelmix.routing.learned.blind import BlindGate, blind_features
from modelmix.routing.learned.blind_strategy import BlindCascadeStrategy
from modelmix.routing.learned.calibrate import train_artifact
from modelmix.routing.learned.data import RoutingData
from modelmix.routing.learned.train_blind import TAU_GRID, cost_at, has_lengths
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Outcome
from modelmix.types import ChatRequest, ChatResponse, Usage
from tests.routing.test_learned import synthetic

SHORT, LONG = 40.0, 400.0


def rambling(n: int = 240, seed: int = 0) -> RoutingData:
    """``synthetic`` with the small model's completion length telling its failures: short when
    right, long when wrong (on easy prompts it is right 95% of the time)."""
    data = synthetic(n=n, seed=seed)
    rng = np.random.default_rng(seed + 1)
    ok = data.score[:, 0] == 1.0
    noise = rng.uniform(0.8, 1.25, size=n)
    data.completion_tokens[:, 0] = np.where(ok, SHORT, LONG) * noise
    return data


@pytest.fixture(scope="module")
def trained():
    data = rambling()
    return data, train_artifact(data, folds=4, voters=["small"])


def test_features_measure_the_surprise_in_the_heads_residual_spread():
    x = blind_features(
        np.array([0.5, 0.9]),
        np.log1p(np.array([100.0, 100.0])),
        np.array([0.25, 0.25]),
        np.array([100.0, np.expm1(np.log1p(100.0) + 1.0)]),
        np.array([10.0, 10.0]),
        np.array([0, 1]),
        2,
    )
    assert x.shape == (2, 8)
    assert x[0, 0] == pytest.approx(0.0)  # logit 0.5
    assert x[0, 1] == pytest.approx(0.0) and x[1, 1] == pytest.approx(2.0)  # 1 / sd 0.5
    assert x[1, 2] == pytest.approx(2.0)  # positive part
    # the surprise in its category's column only
    assert list(x[1, 6:]) == pytest.approx([0.0, 2.0])


def test_gate_round_trips_and_rates_a_long_cheap_answer_lower(trained):
    _data, artifact = trained
    gate = artifact.blind
    assert gate is not None and gate.strong == "large"
    assert BlindGate.from_dict(gate.as_dict()).as_dict() == gate.as_dict()
    s = BlindCascadeStrategy("b", artifact, tau=0.5)
    j, heads = s.first_call("What is 12 plus 30?", 8)
    assert artifact.models[j] == "small"
    short = s.p_good(j, heads, int(SHORT), 8)
    long = s.p_good(j, heads, int(LONG), 8)
    assert short > 0.8 > 0.3 > long


def test_calibration_is_held_back_and_spans_cheap_to_strong(trained):
    data, artifact = trained
    cal = artifact.blind.calibration
    assert cal.knob == list(TAU_GRID)
    best_q = data.score[:, 1].mean()
    # tau = 1 escalates every prompt the cheap pick took: the strong model's quality
    assert cal.share[-1] == pytest.approx(1.0, abs=0.02)
    assert cal.share[0] < cal.share[-1] and cal.cost_share[0] < cal.cost_share[-1]
    # the length tells the small model's failures: near the strong model's quality for
    # much less than its cost, measured on held-back folds
    assert cost_at(cal.share, cal.cost_share, 0.97) < 0.8
    assert len(cal.se) == len(cal.share) and best_q > 0


def test_no_gate_when_every_completion_has_one_length():
    data = synthetic(n=80)
    data.completion_tokens[:] = 1.0  # e.g. MMLU's one-token answers
    assert not has_lengths(data)
    assert train_artifact(data, folds=4, voters=["small"]).blind is None
    data.completion_tokens[3, 1] = 2.0
    assert has_lengths(data)


def test_cost_at_interpolates_and_says_never():
    assert cost_at([0.8, 0.9, 1.0], [0.1, 0.3, 1.0], 0.95) == pytest.approx(0.65)
    assert cost_at([0.8, 0.9], [0.1, 0.3], 0.95) == float("inf")
    assert cost_at([0.8, 0.9], [0.1, 0.3], 0.5) == 0.1


def _plan(strategy, text, tokens, content="", finish="stop"):
    req = ChatRequest(model="b", messages=[{"role": "user", "content": text}])
    decision = {}
    plan = strategy.plan(req, needs_of(req), decision)
    first = next(plan)
    called = [first.model]
    resp = ChatResponse(
        id="1", model=first.model, content=content, usage=Usage(8, tokens), finish_reason=finish
    )
    try:
        nxt = plan.send(Outcome(first.model, response=resp))
        called.append(nxt.model)
        final = None
        try:
            plan.send(
                Outcome(nxt.model, response=ChatResponse(id="2", model=nxt.model, content=""))
            )
        except StopIteration as stop:
            final = stop.value
    except StopIteration as stop:
        final = stop.value
    return called, final, decision


def test_the_plan_escalates_on_a_long_or_cut_answer_and_never_reads_it(trained):
    _data, artifact = trained
    s = BlindCascadeStrategy("b", artifact, tau=0.5)
    easy = "What is 12 plus 30?"
    called, final, decision = _plan(s, easy, int(SHORT))
    assert called == ["small"] and final.model == "small"
    assert "escalated" not in decision and decision["blind_gate"]["tokens"] == int(SHORT)
    called, final, decision = _plan(s, easy, int(LONG))
    assert called == ["small", "large"] and final.model == "large" and decision["escalated"]
    called, _, _ = _plan(s, easy, int(SHORT), finish="length")
    assert called == ["small", "large"]
    # the content does not matter: an answer that looks right or wrong, the same decision
    for content in ('{"answer": "42"}', "I am not sure", ""):
        assert _plan(s, easy, int(SHORT), content)[0] == ["small"]
        assert _plan(s, easy, int(LONG), content)[0] == ["small", "large"]


def test_a_quality_target_maps_to_tau_through_the_held_back_table(trained):
    _data, artifact = trained
    cal = artifact.blind.calibration
    for t in (0.9, 0.95, 1.0):
        assert BlindCascadeStrategy("b", artifact, quality_target=t).tau == cal.knob_for(t)
    assert BlindCascadeStrategy("b", artifact, quality_target=0.9).tau == 0.0  # cheap suffices
    assert safety.options("blind", cal)[1].label() == "blind (tau 0.02)"


def test_a_failed_cheap_call_goes_to_the_strong_model(trained):
    _data, artifact = trained
    s = BlindCascadeStrategy("b", artifact, tau=0.0)
    req = ChatRequest(model="b", messages=[{"role": "user", "content": "What is 1 plus 2?"}])
    decision = {}
    plan = s.plan(req, needs_of(req), decision)
    first = next(plan)
    nxt = plan.send(Outcome(first.model, error=None, response=None))
    assert nxt.model == "large" and decision["escalated"]


def test_the_artifact_keeps_the_gate(trained, tmp_path):
    _data, artifact = trained
    artifact.save(tmp_path / "r.npz")
    again = load_artifact(tmp_path / "r.npz")
    assert again.blind is not None and again.blind.as_dict() == artifact.blind.as_dict()


def test_the_bench_replays_it_with_answers_hidden(trained):
    data, artifact = trained
    s = BlindCascadeStrategy(BLIND, artifact, tau=1.0)
    i = next(k for k in range(len(data)) if data.score[k, 0] == 1.0 and k % 2 == 0)
    assert simulate(s, data, i, data.cost, hide_answers=True)[2] == ["small", "large"]
    result = summary(run_benchmark(rambling(n=240, seed=3), folds=2))
    rows = [r for r in result["runs"] if r["router"] == BLIND]
    assert {r["knob"] for r in rows} >= {"quality_target=0.95", "tau=0.00", "tau=1.00"}
    assert BLIND in result["curves"]
    offered = result["blind_offered"]
    assert all(v[1] == 2 and 0 <= v[0] <= 2 for v in offered.values())
