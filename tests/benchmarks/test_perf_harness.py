"""Smoke test: the performance harness (benchmarks/perf/run.py) runs end to end in a tiny mode.

No timing assertions: it checks that every target answered, that the table and the goals are
produced, and that the ledger holds exactly one row per request sent.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN = ROOT / "benchmarks" / "perf" / "run.py"

pytestmark = pytest.mark.skipif(
    shutil.which("modelmix") is None, reason="needs the `modelmix` command (pip install -e .)"
)


def test_harness_runs_in_tiny_mode(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable, str(RUN), "--quick", "--no-litellm", "--workers", "0",
            "--round-seconds", "0.3", "--warmup", "0.2", "--long", "200,400",
            "--concurrency", "8", "--json", str(out),
        ],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    targets = result["targets"]
    assert set(targets) == {
        "direct",
        "bare",
        "mm-pass",
        "mm-feat",
        "mm-feat-budget",
        "mm-dist",
        "mm-cache",
    }
    for name, row in targets.items():
        assert row["errors"] == 0, (name, row["first_error"])
        assert row["json_rps"] > 0 and row["stream_rps"] > 0, name
        assert row["ttfb_p50"] > 0, name
    for name, counts in result["ledger"].items():
        assert counts["rows"] == counts["sent"] > 0, name
    assert result["ledger"]["mm-cache"]["hits"] > 0  # the cache target measured hits
    # warm-up, then two checkpoints of the long run
    assert len(result["memory"]) == 3
    assert result["memory"][-1][0] - result["memory"][0][0] == 400
    assert "goals (mm-feat = features on)" in result["table"]
    assert "mm-feat" in proc.stdout
