import numpy as np
import pytest

from modelmix.bench.routing import run_benchmark, summary
from tests.routing.test_learned import synthetic


def test_benchmark_on_two_model_toy():
    data = synthetic(n=240)  # 120 training prompts per fold: enough to promise targets
    result = run_benchmark(data, folds=2)
    s = summary(result)
    runs = {(r["router"], r["knob"]): r for r in s["runs"]}
    cost = data.cost
    assert runs[("small", "always")]["quality"] == pytest.approx(data.score[:, 0].mean())
    assert runs[("large", "always")]["cost"] == pytest.approx(cost[:, 1].sum())
    assert s["best_model"] == "large"
    oracle = runs[("oracle", "per-prompt")]
    assert oracle["quality"] >= max(data.score.mean(axis=0))
    # Easy half to the small model: the router keeps quality at a fraction of the cost.
    learned = runs[("learned", "quality_target=0.95")]
    assert learned["quality_share"] > 0.9 and learned["cost_share"] < 0.8
    assert "two_model" in s and 0.0 <= s["two_model"]["learned"]["apgr"] <= 1.2
    assert s["curves"]["learned"]["aiq"] > s["curves"]["random"]["aiq"]
    cascade = runs[("cascade-agree", "need=2")]
    assert cascade["escalation_rate"] == pytest.approx(1.0)  # one voter can never agree
    assert np.isfinite(s["curves"]["single-model hull"]["aiq"])
