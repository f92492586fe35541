"""The agent frameworks the e2e tests drive, installed the way a user installs them: ``pip
install`` into a virtual environment of their own (their dependency ranges need newer releases
of orjson than modelmix pins, so they cannot share the test environment).

The environment is built once per machine, keyed by the pinned requirements, under
``$MODELMIX_AGENT_CLIENTS`` (default ``~/.cache/modelmix/agent-clients``) and reused after that.
A failed install fails the tests that need it; nothing is skipped.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REQUIREMENTS = (
    "openai==3.54.0",
    "openai-agents==0.24.0",
    "langchain-openai==1.8.1",
    "pydantic-ai-slim[openai]==2.68.0",
)
SCRIPTS = Path(__file__).parent / "agent_scripts"
INSTALL_TIMEOUT_S = 1200


def _root() -> Path:
    base = os.environ.get("MODELMIX_AGENT_CLIENTS")
    home = Path(base) if base else Path.home() / ".cache" / "modelmix" / "agent-clients"
    key = hashlib.sha256("\n".join(REQUIREMENTS).encode()).hexdigest()[:12]
    return home / key


def client_python() -> Path:
    """The Python of a virtual environment holding the agent clients (built if missing)."""
    root = _root()
    python = root / "bin" / "python"
    marker = root / "installed.txt"
    if marker.exists() and python.exists():
        return python
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *REQUIREMENTS,
        ],
        check=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    marker.write_text("\n".join(REQUIREMENTS) + "\n")
    return python


def run_script(
    python: Path, script: str, base_url: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run one of ``agent_scripts/`` with only the two variables a user sets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "PYTHON"))}
    env.update({"OPENAI_BASE_URL": base_url, "OPENAI_API_KEY": "sk-unused-without-keys"})
    return subprocess.run(
        [str(python), str(SCRIPTS / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
