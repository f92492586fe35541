"""Offline replay and retraining from the ledger, on traffic labelled by the judge and shadows."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from modelmix.cli import main
from modelmix.cli.quality_cmds import offline_portfolio
from modelmix.config import load_config
from modelmix.evals.store import EvalStore
from modelmix.gateway import Gateway
from modelmix.quality.policy import load_policy_file
from modelmix.quality.replay import compare, eval_means
from modelmix.quality.store import QualityStore
from modelmix.quality.traffic import load_traffic
from modelmix.routing.learned.artifact import load_artifact

ARITH = Path(__file__).resolve().parents[2] / "examples" / "evals" / "arith.jsonl"


def sim(name: str, upstream: str, price: tuple[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "provider": "openai",
        "model": upstream,
        "base_url": "builtin:simulated",
        "price": {"input": price[0], "output": price[1]},
    }


def prompts(n: int, seed: int = 3) -> list[tuple[str, int]]:
    """Sums with 1 to 5 operators, and their operator count."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ops = rng.randint(1, 5)
        expr = str(rng.randint(2, 30)) + "".join(
            f" {rng.choice('+-*')} {rng.randint(2, 9)}" for _ in range(ops)
        )
        out.append((f"What is {expr}?", ops))
    return out


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """60 requests to route r (always the large model), every one shadowed by the small model
    and judged; returns the config file and each request's operator count."""
    tmp = tmp_path_factory.mktemp("replay")
    data = {
        "ledger": {"path": str(tmp / "ledger.db"), "flush_interval": 0.05},
        "models": [
            sim("small", "sim-small", ("0.1", "0.4")),
            sim("medium", "sim-medium", ("1", "5")),
            sim("large", "sim-large", ("3", "15")),
            sim("judge", "sim-large", ("3", "15")),
        ],
        "routes": [{"name": "r", "models": ["large"], "shadow": {"model": "small", "sample": 1.0}}],
        "quality": {"capture": {"sample": 1.0}, "judge": {"model": "judge", "sample": 1.0}},
    }
    path = tmp / "modelmix.yaml"
    path.write_text(yaml.safe_dump(data))
    config = load_config(path)
    ops: list[int] = []

    async def run() -> None:
        async with Gateway(config, background=False) as gw:
            for prompt, n in prompts(60):
                await gw.chat({"model": "r", "messages": [{"role": "user", "content": prompt}]})
                ops.append(n)
            assert gw.quality is not None
            await gw.quality.flush()

    import asyncio

    asyncio.run(run())
    return path, ops


def write_policy(tmp: Path, models: list[str]) -> Path:
    path = tmp / f"policy-{'-'.join(models)}.yaml"
    path.write_text(yaml.safe_dump({"routes": [{"name": "r", "models": models}]}))
    return path


def test_traffic_has_known_outcomes(logged: tuple[Path, list[int]]) -> None:
    path, ops = logged
    with QualityStore(load_config(path).ledger_path) as store:
        traffic = load_traffic(store)
    assert len(traffic) == 60
    assert all(t.served == "large" and t.label_source == "judge" for t in traffic)
    assert all(t.quality["large"] == 1.0 for t in traffic)
    # the small model's shadow answers, judged: right exactly when within its skill
    assert [t.quality["small"] for t in traffic] == [float(n <= 2) for n in ops]
    assert all("small" in t.cost and "small" in t.answers for t in traffic)


def test_replay_predicts_the_candidate_from_observed_outcomes(
    logged: tuple[Path, list[int]], tmp_path: Path
) -> None:
    path, ops = logged
    config = load_config(path)
    live = list(config.routes)
    candidate = load_policy_file(config, write_policy(tmp_path, ["small"]))
    with QualityStore(config.ledger_path) as store:
        traffic = load_traffic(store)
    portfolio = offline_portfolio(config)
    assert all(
        d.base_url.startswith("http://offline.invalid")
        for e in portfolio.values()
        for d in e.deployments
    )  # nothing could be called
    report = compare(portfolio, live, candidate, traffic)
    truth = sum(n <= 2 for n in ops) / len(ops)
    assert report.compared == 60 and report.candidate.observed_quality == 1.0
    assert report.candidate.quality.mean == pytest.approx(truth)
    assert report.live.quality.mean == 1.0
    assert report.quality_diff.hi < 0 and report.cost_diff.hi < 0
    assert report.candidate.quality.lo < truth < report.candidate.quality.hi
    assert (
        report.verdict()
        == "candidate: lower quality than live (the whole interval is below 0); cheaper"
    )
    assert report.candidate.models == {"small": 60} and report.agreement == 0.0


def test_replay_imputes_unknown_models_only_with_a_prior(
    logged: tuple[Path, list[int]], tmp_path: Path
) -> None:
    path, _ = logged
    config = load_config(path)
    candidate = load_policy_file(config, write_policy(tmp_path, ["medium"]))
    with QualityStore(config.ledger_path) as store, EvalStore(config.ledger_path) as evals:
        traffic = load_traffic(store)
        means = eval_means(evals)
    report = compare(
        offline_portfolio(config), list(config.routes), candidate, traffic, fallback=means
    )
    if "medium" not in means:  # no eval of the medium model yet: nothing to say about it
        assert report.compared == 0
        assert report.unreplayable == {"candidate: no prior for medium": 60}
    report = compare(
        offline_portfolio(config), list(config.routes), candidate, traffic, priors={"medium": 0.6}
    )
    assert report.compared == 60 and report.candidate.observed_quality == 0.0
    assert report.candidate.quality.mean == pytest.approx(0.6)


def test_replay_command(logged: tuple[Path, list[int]], tmp_path: Path) -> None:
    path, ops = logged
    policy = write_policy(tmp_path, ["small"])
    result = CliRunner().invoke(
        main, ["replay", "--policy", str(policy), "--config", str(path), "--json"]
    )
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["compared"] == 60
    assert body["candidate"]["quality"]["mean"] == pytest.approx(sum(n <= 2 for n in ops) / 60)
    table = CliRunner().invoke(main, ["replay", "--policy", str(policy), "--config", str(path)])
    assert (
        "Offline replay of 60 logged requests" in table.output
        and "no upstream was called" in table.output
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - {name: r, models: [nope]}\n")
    result = CliRunner().invoke(main, ["replay", "--policy", str(bad), "--config", str(path)])
    assert result.exit_code == 2 and "routes[0].models[0]: unknown model 'nope'" in result.output


def test_router_train_from_ledger_then_replay(
    logged: tuple[Path, list[int]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = logged
    runner = CliRunner()
    too_few = runner.invoke(
        main,
        [
            "router",
            "train",
            "--from-ledger",
            "--config",
            str(path),
            "--route",
            "r",
            "--models",
            "small,medium,large",
            "--out",
            str(tmp_path / "x.npz"),
        ],
    )
    assert (
        too_few.exit_code == 1
        and "need at least 10 prompts labelled for every model" in too_few.output
    )
    ran = runner.invoke(
        main,
        [
            "eval",
            "run",
            str(ARITH),
            "--config",
            str(path),
            "--models",
            "small,medium,large",
            "--run",
            "arith",
            "--no-progress",
        ],
    )
    assert ran.exit_code == 0, ran.output
    out = tmp_path / "r.npz"
    result = runner.invoke(
        main,
        [
            "router",
            "train",
            "--from-ledger",
            "--config",
            str(path),
            "--route",
            "r",
            "--models",
            "small,medium,large",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    distinct = len({json.loads(line)["prompt"] for line in ARITH.read_text().splitlines()})
    assert f"labelled prompts: {distinct} with every model's outcome" in result.output
    assert "Offline replay of 60 logged requests" in result.output
    artifact = load_artifact(str(out))
    assert artifact.models == ["small", "medium", "large"] and artifact.meta["prompts"] == distinct
    policy = out.with_suffix(".policy.yaml")
    routes = load_policy_file(load_config(path), policy)
    assert routes[0].strategy == "learned" and routes[0].learned is not None
    assert routes[0].learned.artifact == str(out.resolve())
    assert "modelmix policy canary" in result.output
    usage = runner.invoke(main, ["router", "train", "--out", str(tmp_path / "y.npz")])
    assert usage.exit_code == 2 and "give --data and --prices, or --from-ledger" in usage.output
