"""Routers on another portfolio: ``RoutingData.keep_models``, ``draw_portfolio`` and
``modelmix bench routing --models / --random-models``."""

from pathlib import Path

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from modelmix.cli import main
from modelmix.routing.learned.data import draw_portfolio
from tests.routing.test_learned import jsonl_rows, synthetic


def test_keep_models_keeps_the_columns_of_the_named_models_in_their_order():
    data = synthetic(n=40)
    swapped = data.keep_models(["large", "small"])
    assert swapped.models == ["large", "small"]
    assert np.array_equal(swapped.score[:, 0], data.score[:, 1])
    assert np.array_equal(swapped.cost[:, 1], data.cost[:, 0])
    assert [row[0] for row in swapped.answers] == [row[1] for row in data.answers]
    assert set(swapped.prices) == {"small", "large"} and swapped.ids == data.ids
    with pytest.raises(ValueError, match="not in the data: medium"):
        data.keep_models(["small", "medium"])
    with pytest.raises(ValueError, match="at least two models"):
        data.keep_models(["small", "small"])


def test_a_drawn_portfolio_is_a_fixed_subset_for_a_seed_in_file_order():
    models = [f"m{k:02d}" for k in range(24)]
    a = draw_portfolio(models, 7, seed=3)
    assert a == draw_portfolio(models, 7, seed=3) and len(set(a)) == 7
    assert a == sorted(a) and set(a) <= set(models)
    assert {tuple(draw_portfolio(models, 7, seed=s)) for s in range(5)} != {tuple(a)}
    with pytest.raises(ValueError, match=r"need 2\.\.24"):
        draw_portfolio(models, 25, seed=0)


def _write_three_model_file(tmp: Path) -> tuple[Path, Path]:
    """The toy data with a third, middling model (right on every easy prompt only)."""
    data = synthetic(n=120)
    lines = []
    for row in jsonl_rows(data):
        easy = row["category"] == "easy"
        row["outcomes"]["middle"] = {
            "score": 1.0 if easy else 0.0,
            "prompt_tokens": 20,
            "completion_tokens": 100,
            "answer": "ok" if easy else f"mid-{row['id']}",
        }
        lines.append(orjson.dumps(row))
    path = tmp / "toy.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    prices = {
        "small": {"input_per_mtok": 0.1, "output_per_mtok": 0.4},
        "middle": {"input_per_mtok": 0.5, "output_per_mtok": 2.0},
        "large": {"input_per_mtok": 3.0, "output_per_mtok": 15.0},
    }
    price_path = tmp / "prices.json"
    price_path.write_bytes(orjson.dumps(prices))
    return path, price_path


def test_bench_routing_on_a_smaller_portfolio(tmp_path):
    data, prices = _write_three_model_file(tmp_path)
    out = tmp_path / "run.json"
    args = ["bench", "routing", "--data", str(data), "--prices", str(prices), "--folds", "2"]
    result = CliRunner().invoke(
        main, [*args, "--models", "middle,large", "--json", str(out)], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert "portfolio: 2 of the file's 3 models (--models): middle, large" in result.output
    s = orjson.loads(out.read_bytes())
    assert s["portfolio"] == ["middle", "large"]
    singles = {r["router"] for r in s["runs"] if r["family"] == "single"}
    assert singles == {"middle", "large"}  # the model left out is never called

    drawn = CliRunner().invoke(
        main, [*args, "--random-models", "2", "--portfolio-seed", "1"], terminal_width=200
    )
    assert drawn.exit_code == 0, drawn.output
    assert "portfolio: 2 of the file's 3 models drawn at random (portfolio seed 1)" in drawn.output

    bad = CliRunner().invoke(main, [*args, "--models", "small,gpt-9"])
    assert bad.exit_code == 2 and "not in the data: gpt-9" in bad.output
    both = CliRunner().invoke(main, [*args, "--models", "small,large", "--random-models", "2"])
    assert both.exit_code == 2 and "not both" in both.output
