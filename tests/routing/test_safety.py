"""Do no harm: the served setting for a target is safe, measured, and explained."""

import pytest

from modelmix.routing.learned import safety
from modelmix.routing.learned.safety import Option


def singles():
    return [
        Option("single", 0.70, 0.02, model="cheap"),
        Option("single", 0.94, 0.06, model="mini"),
        Option("single", 1.00, 1.00, model="best"),
        Option("single", 0.90, 4.00, model="dear"),  # beaten by mini: never served
    ]


def test_a_setting_a_single_model_beats_on_both_axes_is_never_served():
    learned = [
        Option("learned", 0.92, 0.10, knob=-1.0),  # mini is better and cheaper
        Option("learned", 0.97, 0.30, knob=-0.5),
        Option("learned", 0.995, 0.95, knob=0.0),  # about always-best's cost: no gain
    ]
    assert safety.beaten_by(learned[0], singles()).model == "mini"
    assert not safety.is_safe(learned[0], singles())
    assert not safety.is_safe(learned[2], singles())
    choice = safety.choose(0.94, learned, singles(), margin=False)
    assert choice.option.model == "mini" and choice.upper is None
    # Under mini: a split of cheap and mini, never the beaten learned setting.
    choice = safety.choose(0.92, learned, singles(), margin=False)
    assert (choice.option.model, choice.upper.model) == ("cheap", "mini")
    assert choice.p_upper == pytest.approx((0.92 - 0.70) / (0.94 - 0.70))
    # Between mini and the 0.97 setting: a split on the safe frontier, hitting the target.
    choice = safety.choose(0.955, learned, singles(), margin=False)
    assert choice.option.model == "mini" and choice.upper.knob == -0.5
    assert choice.p_upper == pytest.approx((0.955 - 0.94) / (0.97 - 0.94))
    choice = safety.choose(0.999, learned, singles(), margin=False)
    assert choice.option.knob == -0.5 and choice.upper.model == "best"
    # Above every safe setting: the safe model, said so.
    choice = safety.choose(1.01, learned, singles(), margin=False)
    assert choice.option.model == "best" and "safe model best" in choice.note


def test_the_margin_shrinks_with_the_standard_error_and_thin_data_promises_only_singles():
    # well measured: half a standard error; uncertain: a standard error less 0.75 points
    assert safety.margin_for(0.01) == pytest.approx(0.005)
    assert safety.margin_for(0.04) == pytest.approx(0.04 - 0.0075)
    learned = [Option("learned", 0.96, 0.20, knob=-1.0, se=0.01)]
    # 0.956 + 0.005 > 0.96: with the margin the learned setting falls short of 0.956
    assert safety.choose(0.956, learned, singles()).upper.model == "best"
    assert safety.choose(0.954, learned, singles()).upper.knob == -1.0
    assert safety.choose(0.956, learned, singles(), margin=False).upper.knob == -1.0
    thin = safety.choose(0.9, learned, singles(), margin=False, prompts=20)
    assert thin.option.kind == "single"


def test_a_split_draw_is_fixed_by_the_prompt():
    u = safety.request_draw("What is 2 + 2?")
    assert 0.0 <= u < 1.0 and u == safety.request_draw("What is 2 + 2?")
    lo, hi = Option("single", 0.9, 0.1, model="a"), Option("single", 1.0, 1.0, model="b")
    choice = safety.Choice(lo, upper=hi, p_upper=0.25)
    assert choice.pick(0.1) is hi and choice.pick(0.5) is lo


def test_an_explicit_knob_is_kept_when_safe_and_replaced_when_not():
    learned = [Option("learned", 0.92, 0.10, knob=-1.0), Option("learned", 0.97, 0.3, knob=0.0)]
    assert safety.for_knob(0.05, learned, singles()) is None
    replaced = safety.for_knob(-1.1, learned, singles())
    assert replaced is not None and replaced.upper.model == "mini"
    assert "beaten by mini" in replaced.note


def test_config_check_and_router_train_say_what_is_served(tmp_path):
    from click.testing import CliRunner

    from modelmix.cli import main

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "models:\n"
        "  - {name: gpt-4o-mini-2024-07-18, provider: openai}\n"
        "  - {name: gpt-4o-2024-08-06, provider: openai}\n"
        "routes:\n"
        "  - name: checked\n"
        "    strategy: cascade\n"
        "    cascade: {staged: true, quality_target: 1.0}\n"
    )
    out = CliRunner().invoke(main, ["config", "check", str(cfg)])
    assert out.exit_code == 0, out.output
    assert "route checked: serves" in out.output


def test_router_train_reports_do_no_harm(tmp_path):
    from click.testing import CliRunner

    from modelmix.cli import main
    from tests.routing.test_learned import jsonl_rows, synthetic

    data = synthetic(n=160)
    rows = [{k: v for k, v in r.items() if k != "category"} for r in jsonl_rows(data)]
    import orjson

    (tmp_path / "d.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in rows))
    prices = {
        m: {"input_per_mtok": p[0] * 1e6, "output_per_mtok": p[1] * 1e6}
        for m, p in data.prices.items()
    }
    (tmp_path / "p.json").write_bytes(orjson.dumps(prices))
    out = CliRunner().invoke(
        main,
        [
            "router",
            "train",
            "--data",
            str(tmp_path / "d.jsonl"),
            "--prices",
            str(tmp_path / "p.json"),
            "--out",
            str(tmp_path / "r.npz"),
            "--folds",
            "4",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "do no harm" in out.output and "quality_target 0.95: learned ->" in out.output
    assert "serving the best model: per prompt, the one of large its predicted" in out.output


def test_task_singles_average_each_category_once_and_fall_back_to_the_pooled_share():
    meta = {
        "singles": {"cheap": [0.9, 0.1], "best": [1.0, 1.0]},
        # a large easy task and a small hard one: pooled, "cheap" looks like 0.9
        "category_singles": {"easy": {"cheap": 0.98, "best": 1.0}, "hard": {"cheap": 0.6}},
    }
    shares = {o.model: o.share for o in safety.task_singles(meta)}
    assert shares == {"cheap": pytest.approx(0.79), "best": 1.0}  # best: only "easy" knows it
    costs = {o.model: o.cost_share for o in safety.task_singles(meta)}
    assert costs == {"cheap": 0.1, "best": 1.0}
    pooled = {o.model: o.share for o in safety.task_singles({"singles": meta["singles"]})}
    assert pooled == {"cheap": 0.9, "best": 1.0}
    # a target the pooled share promises with the cheap model alone needs the best one for
    # part of the prompts here: (0.85 - 0.79) / (1.0 - 0.79) of them
    pooled_choice = safety.choose(0.85, [], safety.singles(meta), margin=False)
    assert pooled_choice is not None and pooled_choice.upper is None
    assert pooled_choice.option.model == "cheap"
    choice = safety.choose(0.85, [], safety.task_singles(meta), margin=False)
    assert choice is not None and choice.upper is not None and choice.upper.model == "best"
    assert choice.p_upper == pytest.approx(0.06 / 0.21)


def test_a_category_where_the_best_model_scores_near_zero_does_not_make_a_cheap_model_safe():
    # MMLU's high_school_mathematics: the best model right on 3% of prompts, the cheap one
    # on 30% (share 10): uncapped, the cheap model would average above the best one
    cats = {f"c{i}": {"cheap": 0.85, "best": 1.0} for i in range(5)}
    cats["broken"] = {"cheap": 10.0, "best": 1.0}
    meta = {"singles": {"cheap": [0.86, 0.1], "best": [1.0, 1.0]}, "category_singles": cats}
    shares = {o.model: o.share for o in safety.task_singles(meta)}
    assert shares["cheap"] == pytest.approx((5 * 0.85 + safety.MAX_TASK_SHARE) / 6)
    assert shares["cheap"] < shares["best"]
    task = safety.task_singles(meta)
    assert safety.safe_model(task).model == "best" and safety.peers(task) == ["best"]
    assert safety.choose(1.0, [], task).option.model == "best"


def test_peers_are_the_models_within_near_of_the_top_share():
    single = [
        Option("single", 0.995, 1.2, model="twin"),
        Option("single", 1.0, 1.0, model="best"),
        Option("single", 0.97, 0.5, model="mini"),
    ]
    assert safety.peers(single) == ["twin", "best"]
    assert safety.peers([]) == []


def test_serving_the_best_model_serves_its_peer_predicted_cheapest_for_the_prompt():
    from modelmix.routing.learned.calibrate import train_artifact
    from modelmix.routing.learned.strategy import LearnedStrategy
    from tests.routing.test_learned import synthetic

    art = train_artifact(synthetic(n=160), folds=4, voters=["small"])
    best = Option("single", 1.0, 1.0, model="large")  # the safe model, as a route pins it
    pinned = LearnedStrategy("r", ["small", "large"], art, quality_target=1.0, setting=best)
    assert pinned._best == 1 and pinned._peers == [1]  # small is far from large's share
    assert pinned.choose([0.5, 0.9], [0.1, 2.0], [True, True]) == 1
    # small keeps large's quality pooled: the two are peers for a prompt like the training ones
    art.meta["singles"] = {"small": [0.995, 0.1], "large": [1.0, 1.0]}
    art.meta["category_singles"] = {"easy": {"small": 1.0, "large": 1.0}, "hard": {"small": 0.5}}
    twins = LearnedStrategy("r", ["small", "large"], art, quality_target=1.0, setting=best)
    assert twins._best == 1 and twins._peers == [0, 1] and twins._novel_peers == [1]
    assert twins.choose([0.5, 0.9], [0.1, 2.0], [True, True]) == 0  # cheaper here
    assert twins.choose([0.5, 0.9], [3.0, 2.0], [True, True]) == 1
    assert twins.choose([0.5, 0.9], [0.1, 2.0], [False, True]) == 1  # not eligible
    # an unfamiliar prompt: the peers in the shares averaged over the tasks (small is not)
    assert twins.choose([0.5, 0.9], [0.1, 2.0], [True, True], novel=True) == 1
    # under budget pressure the degraded knob decides, as before
    assert twins.choose([0.5, 0.9], [0.1, 2.0], [True, True], pressure=0.5) in (0, 1)


def test_a_profile_route_of_measured_models_never_serves_a_beaten_threshold():
    from modelmix.routing.learned.artifact import Calibration
    from modelmix.routing.learned.calibrate import train_artifact
    from modelmix.routing.learned.strategy import LearnedStrategy
    from tests.routing.test_learned import synthetic

    art = train_artifact(synthetic(n=160), folds=4, voters=["small"])
    profiles = {"small": 0.6, "large": 0.9}
    # thresholds measured out of fold: 0.5 keeps 80% at 5% of the cost; 0.8 keeps 90% at 60%
    # (small alone keeps 95% at 10%: it beats 0.8); 0.95 keeps 100% at 98% (no saving)
    art.profile_calibration = Calibration([0.5, 0.8, 0.95], [0.8, 0.9, 1.0], [0.05, 0.6, 0.98])
    art.meta["singles"] = {"small": [0.95, 0.1], "large": [1.0, 1.0]}

    def route(target: float, **kw: object) -> LearnedStrategy:
        return LearnedStrategy("r", ["small", "large"], art, quality_target=target, **kw)

    cheap = route(0.75, profiles=profiles)
    assert cheap._best is None and cheap._choice is None and cheap._threshold == 0.5
    assert cheap.served == "profile (threshold 0.500)"
    pinned = route(0.95, profiles=profiles)  # not the beaten 0.8 threshold: small itself
    assert pinned._best == 0 and pinned.served == "single model small"
    assert pinned.choose([0.5, 0.9], [0.1, 2.0], [True, True]) == 0
    mixed = route(0.9, profiles=profiles)  # between the 0.5 threshold and small
    assert mixed._choice is not None and mixed._choice.upper is not None
    assert mixed._choice.option.label() == "profile (threshold 0.500)"
    # a threshold drawn per request holds for that request only
    strict = Option("profile", 0.9, 0.6, knob=0.99)
    assert mixed.choose([0.5, 0.9], [0.1, 2.0], [True, True], setting=strict) == 1
    assert mixed.choose([0.5, 0.9], [0.1, 2.0], [True, True]) == 0
    assert mixed._threshold == 0.5
    # a model the artifact did not measure: no single-model figures, the threshold as trained
    art.meta["singles"] = {"small": [0.95, 0.1]}
    free = route(0.95, profiles=profiles)
    assert free._best is None and free.served is None
