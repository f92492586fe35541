import contextlib
from pathlib import Path

import numpy as np
import pytest

from modelmix.routing.learned.artifact import Calibration, load_artifact
from modelmix.routing.learned.calibrate import train_artifact
from modelmix.routing.learned.data import RoutingData, load_data, load_prices
from modelmix.routing.learned.strategy import LearnedStrategy
from modelmix.routing.needs import needs_of
from modelmix.routing.strategy import Outcome
from modelmix.types import ChatRequest, ChatResponse

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "routing"


def synthetic(n: int = 160, seed: int = 0) -> RoutingData:
    """Easy prompts (small model right) and hard ones (only large right); known answers."""
    rng = np.random.default_rng(seed)
    prompts, cats, score, answers = [], [], [], []
    for i in range(n):
        hard = i % 2 == 1
        a, b = rng.integers(1, 99, size=2)
        if hard:
            prompts.append(f"Prove that the integral \\int_0^{a} x^{b} dx converges; use $\\lim$.")
        else:
            prompts.append(f"What is {a} plus {b}?")
        cats.append("hard" if hard else "easy")
        small_ok = (not hard) and rng.random() < 0.95
        large_ok = rng.random() < 0.95
        score.append([float(small_ok), float(large_ok)])
        answers.append(["ok" if small_ok else f"bad{i}", "ok" if large_ok else f"wrong{i}"])
    s = np.array(score)
    return RoutingData(
        ids=[f"p{i}" for i in range(n)],
        categories=cats,
        prompts=prompts,
        models=["small", "large"],
        score=s,
        prompt_tokens=np.full((n, 2), 20.0),
        completion_tokens=np.tile([50.0, 200.0], (n, 1)),
        answers=answers,
        prices={"small": (1e-7, 4e-7), "large": (3e-6, 1.5e-5)},
    )


def jsonl_rows(data: RoutingData) -> list[dict]:
    """``data`` as rows of the shared JSONL format (``load_data`` reads them back)."""
    rows = []
    for i in range(len(data)):
        outcomes = {
            m: {
                "score": float(data.score[i, j]),
                "prompt_tokens": int(data.prompt_tokens[i, j]),
                "completion_tokens": int(data.completion_tokens[i, j]),
                "answer": data.answers[i][j],
            }
            for j, m in enumerate(data.models)
        }
        row = {"id": data.ids[i], "category": data.categories[i], "prompt": data.prompts[i]}
        rows.append({**row, "outcomes": outcomes})
    return rows


@pytest.fixture(scope="module")
def artifact():
    return train_artifact(synthetic(), folds=4, voters=["small"])


def decide(strategy, text):
    req = ChatRequest(model="r", messages=[{"role": "user", "content": text}])
    decision = {}
    plan = strategy.plan(req, needs_of(req), decision)
    attempt = next(plan)
    with contextlib.suppress(StopIteration):
        plan.send(Outcome(attempt.model, response=ChatResponse(id="1", model="m", content="x")))
    return attempt.model, decision


def test_predictions_separate_easy_from_hard(artifact):
    easy = artifact.predict(artifact.featurize("What is 12 plus 30?"))[0]
    hard = artifact.predict(artifact.featurize("Prove that \\int_0^5 x^2 dx converges; $\\lim$."))[
        0
    ]
    assert easy[0] > 0.8 and hard[0] < 0.2
    assert hard[1] > 0.8
    toks = artifact.predict(artifact.featurize("What is 1 plus 2?"))[1]
    assert toks[0] == pytest.approx(50, rel=0.1) and toks[1] == pytest.approx(200, rel=0.1)


def test_strategy_routes_by_difficulty_and_records_decision(artifact):
    s = LearnedStrategy("r", ["small", "large"], artifact, quality_target=0.95)
    model, decision = decide(s, "What is 15 plus 27?")
    assert model == "small"
    assert decision["chosen"] == "small" and len(decision["candidates"]) == 2
    assert {"model", "p_good", "cost"} <= set(decision["candidates"][0])
    assert decision["knob"]["quality_target"] == 0.95
    assert decide(s, "Prove that \\int_0^3 x^9 dx converges; $\\lim$.")[0] == "large"
    # A cost cap below the large model's predicted cost forces the small one.
    capped = LearnedStrategy("r", ["small", "large"], artifact, quality_target=1.0, max_cost=1e-4)
    assert decide(capped, "Prove that \\int_0^3 x^9 dx converges; $\\lim$.")[0] == "small"


def test_calibration_hits_quality_target(artifact):
    # Half the prompts are easy: easy->small keeps ~all quality, so high targets are reachable.
    data = synthetic(n=200, seed=1)
    for target in (0.9, 0.97):
        s = LearnedStrategy("r", data.models, artifact, quality_target=target)
        total = 0.0
        for i, text in enumerate(data.prompts):
            j = data.models.index(decide(s, text)[0])
            total += data.score[i, j]
        realised = total / data.score[:, 1].sum()
        assert realised >= target - 0.05


def test_calibration_table_interpolates():
    cal = Calibration([0.0, 1.0, 2.0], [0.5, 0.8, 0.9])
    assert cal.knob_for(0.8) == pytest.approx(1.0)
    assert cal.knob_for(0.85) == pytest.approx(1.5)
    assert cal.knob_for(0.1) == 0.0 and cal.knob_for(0.99) == 2.0


def test_profiles_work_for_any_portfolio(artifact):
    s = LearnedStrategy(
        "r",
        ["cheap", "pricey"],
        artifact,
        quality_target=0.9,
        profiles={"cheap": 0.5, "pricey": 0.9},
        prices={"cheap": (1e-7, 1e-7), "pricey": (1e-5, 1e-5)},
    )
    assert decide(s, "What is 1 plus 1?")[0] in ("cheap", "pricey")
    model, decision = decide(s, "Prove that \\int_0^3 x^9 dx converges; $\\lim$.")
    assert model == "pricey" and decision["knob"]["mode"] == "profiles"


def test_artifact_round_trip(tmp_path, artifact):
    path = tmp_path / "r.npz"
    artifact.save(path)
    again = load_artifact(path)
    f = artifact.featurize("What is 3 plus 4?")
    assert np.allclose(again.predict(f)[0], artifact.predict(f)[0], atol=1e-2)
    assert again.gate is not None and again.gate.voters == ["small"]
    assert again.calibration.knob == artifact.calibration.knob


def test_default_artifact_decides_fast_on_shared_prompts():
    if not SHARED.exists():
        pytest.skip("shared routing data absent")
    prices = load_prices(SHARED / "models-zeroeval.json")
    data = load_data(SHARED / "zeroeval-dev.jsonl", prices)
    art = load_artifact("default")
    s = LearnedStrategy("r", art.models, art, quality_target=0.95)
    model, decision = decide(s, data.prompts[0])
    assert model in art.models and len(decision["candidates"]) == len(art.models)


def test_target_beyond_the_routers_reach_calls_the_best_model(artifact):
    reach = max(artifact.calibration.share)  # the best share seen on held-back prompts
    beyond = LearnedStrategy("r", ["small", "large"], artifact, quality_target=reach + 0.01)
    within = LearnedStrategy("r", ["small", "large"], artifact, quality_target=0.95)
    easy = "What is 15 plus 27?"
    model, decision = decide(beyond, easy)
    assert model == artifact.best_model == "large"
    assert decision["knob"]["mode"].startswith("single model large")
    assert decide(within, easy)[0] == "small"
    # a cost cap still wins over the target
    capped = LearnedStrategy(
        "r", ["small", "large"], artifact, quality_target=reach + 0.01, max_cost=1e-6
    )
    assert decide(capped, easy)[0] == "small"


def test_profile_router_maps_the_target_through_its_held_back_table(artifact):
    cal = artifact.profile_calibration
    assert cal is not None and cal.knob == sorted(cal.knob)
    profiles = {"small": 0.5, "large": 0.95}
    for target in (0.8, 0.95):
        s = LearnedStrategy("r", ["small", "large"], artifact, quality_target=target,
                            profiles=profiles)  # fmt: skip
        _model, decision = decide(s, "What is 15 plus 27?")
        assert decision["knob"]["threshold"] == pytest.approx(cal.knob_for(target), abs=1e-3)
    # on fresh prompts the realised share of the best model's quality meets the target
    fresh = synthetic(n=200, seed=5)
    best = fresh.score[:, 1].mean()
    profiles = {m: float(q) for m, q in artifact.meta["model_quality"].items()}
    s = LearnedStrategy("r", ["small", "large"], artifact, quality_target=0.9, profiles=profiles)
    got = [decide(s, text)[0] for text in fresh.prompts]
    q = np.mean([fresh.score[i, fresh.models.index(m)] for i, m in enumerate(got)])
    assert q / best >= 0.9 - 0.05


def test_pair_heads_give_the_numpy_heads_outputs(artifact):
    from modelmix.routing.learned.features import sparse_features
    from modelmix.routing.learned.model import FoldedHeads, PairHeads

    typical, _ = artifact.typical_tokens()
    pair = PairHeads(artifact.difficulty, typical)
    folded = FoldedHeads([artifact.difficulty, typical])
    for text in ("What is 3 plus 4?", "Prove that \\int_0^2 x^3 dx converges; $\\lim$.", "é ü 12"):
        got = pair.apply(*sparse_features(text))
        want = folded.apply(artifact.featurize(text))
        assert got == pytest.approx([float(want[0]), float(want[1])], rel=1e-4, abs=1e-4)


def test_typical_tokens_is_the_mean_of_the_models_log_token_predictions(artifact):
    typical, shift = artifact.typical_tokens()
    f = artifact.featurize("What is 30 plus 12?")
    per_model = artifact.tokens.apply(f)
    assert float(typical.apply(f)[0]) == pytest.approx(float(per_model.mean()), rel=1e-4)
    assert shift == pytest.approx(float(artifact.token_var.mean()) / 2)


def test_a_failed_choice_falls_back_to_the_other_models_by_value(artifact):
    from modelmix.errors import UpstreamError

    s = LearnedStrategy("r", ["small", "large"], artifact, quality_target=0.95)
    req = ChatRequest(model="r", messages=[{"role": "user", "content": "What is 15 plus 27?"}])
    decision: dict = {}
    plan = s.plan(req, needs_of(req), decision)
    first = next(plan)
    assert first.model == decision["chosen"]
    second = plan.send(Outcome(first.model, error=UpstreamError("server", "boom", status=500)))
    assert second.model != first.model
    ok = Outcome(second.model, response=ChatResponse(id="1", model="m", content="x"))
    with pytest.raises(StopIteration) as stop:
        plan.send(ok)
    assert stop.value.value is ok and decision["fallback_to"] == second.model


def test_the_category_prior_is_shrunk_toward_the_overall_mean():
    from modelmix.routing.learned.calibrate import PRIOR_SHRINK, category_prior

    S = np.array([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4)
    Y = np.array([[1.0, 0.0]] * 4 + [[0.0, 1.0]] * 4)
    L = category_prior(S, Y, np.arange(8))
    q = (4 * 1.0 + PRIOR_SHRINK * 0.5) / (4 + PRIOR_SHRINK)  # category 0, model 0
    assert L[0, 0] == pytest.approx(np.log(q / (1 - q)))
    assert L[0, 0] == pytest.approx(-L[0, 1]) and L[1, 1] == pytest.approx(L[0, 0])


def test_the_predicted_categorys_prior_shifts_p_good_the_same_way_everywhere(artifact, tmp_path):
    assert artifact.prior_shift is not None and artifact.prior_shift.shape == (2, 2)
    path = tmp_path / "r.npz"
    artifact.save(path)
    again = load_artifact(path)
    assert again.prior_shift is not None
    assert np.allclose(again.prior_shift, artifact.prior_shift)
    s = LearnedStrategy("r", ["large", "small"], again, quality_target=0.95)
    for text in ("What is 12 plus 30?", "Prove that \\int_0^5 x^2 dx converges; $\\lim$."):
        f = again.featurize(text)
        p_artifact = again.predict(f)[0]
        p_route = s.predict(text, f)[0]  # the route's own heads, in its model order
        assert p_route == pytest.approx([p_artifact[1], p_artifact[0]], abs=1e-3)
        z = again.outputs(f)
        plain = 1 / (1 + np.exp(-(again.platt[:, 0] * z[:2] + again.platt[:, 1])))
        shift = again.prior_shift[again.categories.index(again.category_of(f))]
        assert np.allclose(
            p_artifact, 1 / (1 + np.exp(-(np.log(plain / (1 - plain)) + shift))), atol=1e-3
        )
