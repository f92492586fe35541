"""The README's quality-loop figures are the walkthrough script's output, line for line."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_output_line_comes_from_the_walkthrough_transcript() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## The quality loop") : readme.index("## Keys")]
    transcript = (ROOT / "docs" / "quality-walkthrough.txt").read_text()
    checked = 0
    for lang, block in re.findall(r"```([a-z]*)\n(.*?)```", section, re.S):
        if lang == "yaml":
            continue
        for line in block.splitlines():
            text = line.strip()
            if not text or line.startswith(("$", "    ")):
                continue  # commands (and their continuation lines)
            assert text in transcript, text
            checked += 1
    assert checked > 40
    script = (ROOT / "examples" / "quality_walkthrough.sh").read_text()
    for command in re.findall(r"^\$ (modelmix \w+ \w+)", section, re.M):
        assert command in script or command.split()[1] in script, command
