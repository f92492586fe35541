"""``modelmix eval`` on the zero-config simulated models, as the README walks through it."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from modelmix.cli import main

DEMO = Path(__file__).resolve().parents[2] / "examples" / "evals" / "demo.jsonl"
MODELS = "sim-small,sim-medium,sim-large"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MODELMIX_HOME", str(tmp_path))
    monkeypatch.chdir(DEMO.parents[2])  # the README runs from the repository root
    return tmp_path


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result


def test_eval_run_matrix_heatmap_profiles(home: Path) -> None:
    run = invoke(
        "eval",
        "run",
        str(DEMO),
        "--models",
        MODELS,
        "--judge",
        "sim-large",
        "--run",
        "demo",
        "--no-progress",
    )
    assert run.exit_code == 0, run.output
    assert "Eval demo: mean quality [95% interval]" in run.output
    assert "96 results now, 0 already done, 4 errors" in run.output
    matrix = json.loads(invoke("eval", "matrix", "demo", "--json").output)
    cell = {(c["model"], c["task"]): c for c in matrix}
    assert cell[("sim-large", "*")]["mean"] == 1.0
    assert cell[("sim-medium", "*")]["mean"] == 0.625
    assert cell[("sim-small", "*")]["mean"] == 0.375
    assert cell[("sim-small", "estimate")]["method"] == "bootstrap"  # partial credit
    assert cell[("sim-medium", "json")]["errors"] == 4  # no JSON-schema support
    again = invoke("eval", "run", str(DEMO), "--models", MODELS, "--run", "demo", "--no-progress")
    assert "0 results now, 96 already done" in again.output
    profiles = invoke("eval", "profiles", "demo").output
    assert "profiles: {sim-large: 0.98, sim-medium: 0.625, sim-small: 0.375}" in profiles
    png = home / "heat.png"
    out = invoke("eval", "heatmap", "demo", "--out", str(png))
    assert out.exit_code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    listing = invoke("eval", "list").output
    assert "demo" in listing and "96" in listing


def test_errors_are_clear(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = home / "bad.jsonl"
    bad.write_text('{"id": "a", "prompt": "p", "scorer": "bleu"}\n')
    result = CliRunner().invoke(main, ["eval", "run", str(bad), "--models", "sim-small"])
    assert result.exit_code == 2 and "bad.jsonl:1: scorer: unknown scorer 'bleu'" in result.output
    result = CliRunner().invoke(main, ["eval", "run", str(DEMO), "--models", "nope"])
    assert result.exit_code == 1 and "unknown model(s) nope" in result.output
    invoke("eval", "run", str(DEMO), "--models", "sim-large", "--run", "x", "--no-progress")
    result = CliRunner().invoke(main, ["eval", "matrix", "absent"])
    assert result.exit_code == 1 and "no eval run 'absent' (runs: x)" in result.output

    real_import = builtins.__import__

    def no_matplotlib(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = CliRunner().invoke(main, ["eval", "heatmap", "x", "--out", str(home / "h.png")])
    assert result.exit_code == 1
    assert "the heatmap needs matplotlib: pip install 'modelmix[plot]'" in result.output
