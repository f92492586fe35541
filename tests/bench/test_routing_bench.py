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


def test_leave_task_out_holds_whole_categories_out_and_reports_intervals_and_harm():
    from modelmix.bench.routing import task_fold_ids

    cats = ["a"] * 5 + ["b"] * 5 + ["c"] * 5
    fid = task_fold_ids(cats, 5, 0)
    assert fid is not None and len(set(fid)) == 3
    assert all(len({fid[i] for i in range(15) if cats[i] == c}) == 1 for c in "abc")
    many = [f"t{k}" for k in range(12) for _ in range(2)]
    grouped = task_fold_ids(many, 5, 0)
    assert grouped is not None and set(grouped) == set(range(5))
    assert task_fold_ids(["x"] * 10, 5, 0) is None

    data = synthetic(n=240)
    s = summary(run_benchmark(data, folds=2, split="task"))
    assert s["split"] == "task" and s["folds"] == 2  # easy / hard held out in turn
    for r in s["runs"]:
        if r["target"] is not None and r["family"] in ("learned", "cascade"):
            lo, hi = r["interval"]
            assert lo <= r["quality_share"] <= hi
    harm = {h["router"]: h for h in s["do_no_harm"]}
    assert set(harm) >= {"learned", "cascade", "category-prior", "random"}
    for h in harm.values():
        assert 0 <= h["dominated"] <= h["settings"]
    # a task held out shares few words with the other one: its prompts are found unlike
    # the training prompts (and counted per category and per target run)
    unlike = s["unlike_training"]
    assert set(unlike) == {"easy", "hard", "all"} and unlike["all"] > 0.9
    learned = [r for r in s["runs"] if r["router"] == "learned" and r["target"] is not None]
    assert all(r["unlike_training"] == unlike["all"] for r in learned)
    kfold = summary(run_benchmark(data, folds=2))
    assert kfold["unlike_training"]["all"] < 0.2  # held-back prompts of known tasks are familiar
    # each held-out task's own realised share: the pooled share is their weighted mean
    best = data.score[:, 1]
    for r in learned:
        tasks = r["by_task"]
        assert set(tasks) == {"easy", "hard"}
        weights = {
            c: best[[i for i, x in enumerate(data.categories) if x == c]].sum() for c in tasks
        }
        pooled = sum(tasks[c] * weights[c] for c in tasks) / sum(weights.values())
        assert pooled == pytest.approx(r["quality_share"])
    from modelmix.bench.report import worst_task

    row = {"target": 0.9, "by_task": {"easy": 0.97, "hard": 0.80}}
    assert worst_task(row) == "hard 80.0% (-10.0)"
    assert all(r["by_task"] is None for r in kfold["runs"])  # no held-out task out of fold


def test_the_unlike_training_line_names_few_categories_and_sums_up_many():
    from modelmix.bench.report import _unlike

    assert _unlike({"a": 0.5, "b": 0.0, "all": 0.25}) == "a 50.0%, b 0.0%, all 25.0%"
    many = {f"c{k}": k / 10 for k in range(10)} | {"all": 0.45}
    assert _unlike(many) == "all 45.0% (10 categories, from 0.0% to 90.0%)"


def test_a_setting_is_flagged_when_a_single_model_is_better_and_cheaper():
    from modelmix.bench import assess

    singles = [("small", 1.0, 0.6), ("large", 10.0, 0.9)]
    assert assess.dominating_single(5.0, 0.5, singles) == "small"
    assert assess.dominating_single(5.0, 0.7, singles) is None
    assert assess.hull_quality(singles, 5.5) == pytest.approx(0.75)
    lo, hi = assess.share_interval([1.0] * 50 + [0.0] * 50, list(range(100)), np.ones(100))
    assert lo < 0.5 < hi


def test_benchmark_reports_the_embedding_routers_out_of_fold():
    data = synthetic(n=240)
    s = summary(run_benchmark(data, folds=2))
    runs = {(r["router"], r["knob"]): r for r in s["runs"]}
    for router in ("knn", "knn+heads", "cluster"):
        assert runs[(router, "t=0.50")]["cost"] <= runs[(router, "t=1.00")]["cost"]
        assert np.isfinite(s["curves"][router]["aiq"])
