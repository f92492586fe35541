"""The README's library example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def test_library_example_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    section = README.read_text().split("## Library use", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    monkeypatch.setenv("MODELMIX_HOME", str(tmp_path))  # the ledger goes here
    exec(compile(code.group(1), "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[simulated sim-small]")
    assert out[1].startswith("sim-small ")
    assert out[2].startswith("[simulated sim-small]")  # the streamed answer, then its cost
    assert (tmp_path / "ledger.db").exists()
