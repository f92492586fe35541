"""The eval runner through a real in-process gateway and the simulated upstream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from modelmix.evals.dataset import load_dataset
from modelmix.evals.matrix import ALL_TASKS, profiles
from modelmix.evals.runner import EvalRunner
from modelmix.evals.store import EvalStore
from modelmix.gateway import Gateway
from modelmix.ledger.db import Location
from modelmix.ledger.opening import open_ledger
from tests.conftest import ledger_settings
from tests.helpers import make_config, sim_model


def _dataset(tmp: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp / "d.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def _config(tmp: Path, *models: str, at: Location | None = None) -> Any:
    return make_config(
        [sim_model(m) for m in models],
        **ledger_settings(tmp / "ledger.db" if at is None else at, tmp, flush_interval=0.05),
    )


ARITH = [
    {"id": f"a{i}", "task": "easy", "prompt": f"What is {i} + {i + 1}?", "reference": 2 * i + 1}
    for i in range(8)
] + [
    {
        "id": f"h{i}",
        "task": "hard",
        "prompt": f"What is {i} * 3 + 4 - 1 + 2?",
        "reference": 3 * i + 5,
    }
    for i in range(8)
]


async def test_matrix_separates_models_and_resumes(tmp_path: Path, ledger_at: Location) -> None:
    data = load_dataset(_dataset(tmp_path, ARITH))
    config = _config(tmp_path, "sim-small", "sim-large", at=ledger_at)
    async with Gateway(config, background=False) as gw:
        with EvalStore(config.ledger_location) as store:
            summary = await EvalRunner(gw.run, store, concurrency=3).run(
                "r", data, ["sim-small", "sim-large"]
            )
            assert (summary.done, summary.skipped, summary.errors) == (32, 0, 0)
            cells = {(c.model, c.task): c for c in summary.cells}
            assert cells[("sim-small", "easy")].mean == 1.0
            assert cells[("sim-small", "hard")].mean == 0.0  # 4 operators: beyond its skill
            assert cells[("sim-large", "hard")].mean == 1.0
            small = cells[("sim-small", ALL_TASKS)]
            assert small.mean == 0.5 and small.method == "wilson" and small.lo < 0.5 < small.hi
            assert small.cost_total is not None and small.cost_total > 0
            assert small.latency_p50 is not None and small.latency_p95 is not None
            assert profiles(summary.cells) == {"sim-large": 0.98, "sim-small": 0.5}
            # a rerun does nothing; a new model only adds its rows
            again = await EvalRunner(gw.run, store).run("r", data, ["sim-small", "sim-large"])
            assert (again.done, again.skipped) == (0, 32)
            config_models = await EvalRunner(gw.run, store).run("r", data, ["sim-small"])
            assert config_models.done == 0
            assert store.run("r").status == "done"  # type: ignore[union-attr]
            assert len(store.cells("r")) == 6
    assert gw.ledger is not None
    # every eval call is a ledger row (api "eval"): costs are accounted for
    conn = open_ledger(config.ledger_location)
    count = conn.execute("SELECT COUNT(*) FROM requests WHERE api = 'eval'").fetchone()[0]
    conn.close()
    assert count == 32


async def test_an_interrupted_run_keeps_its_rows(tmp_path: Path) -> None:
    data = load_dataset(_dataset(tmp_path, ARITH))
    config = _config(tmp_path, "sim-slow30-large")
    async with Gateway(config, background=False) as gw:
        with EvalStore(config.ledger_path) as store:
            task = asyncio.ensure_future(
                EvalRunner(gw.run, store, concurrency=2).run("r", data, ["sim-slow30-large"])
            )
            await asyncio.sleep(0.2)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            info = store.run("r")
            assert info is not None and info.status == "interrupted"
            kept = len(store.done("r"))
            assert 0 < kept < 16
            resumed = await EvalRunner(gw.run, store, concurrency=8).run(
                "r", data, ["sim-slow30-large"]
            )
            assert resumed.skipped == kept and resumed.done == 16 - kept


async def test_matrix_shows_a_model_that_degrades(tmp_path: Path) -> None:
    """sim-wrongafter16 answers right for its first 16 calls, then wrong: two runs of the same
    dataset show the drop, beyond both intervals."""
    data = load_dataset(_dataset(tmp_path, ARITH))
    config = _config(tmp_path, "sim-large-wrongafter16")
    async with Gateway(config, background=False) as gw:
        with EvalStore(config.ledger_path) as store:
            before = await EvalRunner(gw.run, store).run("monday", data, ["sim-large-wrongafter16"])
            after = await EvalRunner(gw.run, store).run("tuesday", data, ["sim-large-wrongafter16"])
    b = next(c for c in before.cells if c.task == ALL_TASKS)
    a = next(c for c in after.cells if c.task == ALL_TASKS)
    assert (b.mean, a.mean) == (1.0, 0.0) and a.hi < b.lo


async def test_errors_and_judge_scoring(tmp_path: Path) -> None:
    rows = [
        {"id": "w", "task": "words", "prompt": "What is 2 * 3 + 4 - 1?", "scorer": "judge"},
        {"id": "j", "task": "json", "prompt": "hi", "reference": 1, "scorer": "numeric"},
    ]
    data = load_dataset(_dataset(tmp_path, rows))
    config = _config(tmp_path, "sim-large", "sim-small", "sim-500")
    async with Gateway(config, background=False) as gw:
        with EvalStore(config.ledger_location) as store:
            summary = await EvalRunner(gw.run, store, judge="sim-large").run(
                "r", data, ["sim-small", "sim-large", "sim-500"]
            )
            results = {(r.model, r.item_id): r for r in store.results("r")}
    assert results[("sim-large", "w")].score == 1.0
    assert results[("sim-small", "w")].score == 0.0  # 3 operators: wrong, and the judge says so
    assert results[("sim-large", "w")].detail["judge"] == "sim-large"  # type: ignore[index]
    assert summary.judge_cost > 0
    failed = results[("sim-500", "w")]
    assert failed.score == 0.0 and failed.error is not None and "upstream" in failed.error
    cell = next(c for c in summary.cells if c.model == "sim-500" and c.task == ALL_TASKS)
    assert cell.errors == 2 and cell.mean == 0.0
