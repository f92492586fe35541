"""Every module of modelmix imports, and nothing below the server imports ``modelmix.server``.

Run in a fresh interpreter so that modules other tests loaded cannot hide an import: the lower
layers are imported first, one at a time, each followed by a look at ``sys.modules``; then the
rest (the server, the CLI, ...) so that every module is known to import at all.
"""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import modelmix

#: Packages and modules that sit below the ASGI server and must never import it.
LOWER = (
    "modelmix.wire",
    "modelmix.providers",
    "modelmix.routing",
    "modelmix.engine",
    "modelmix.gateway",
    "modelmix.types",
    "modelmix.errors",
)

_PROBE = """
import importlib, json, sys
lower, upper = json.loads(sys.argv[1])
leaks = []
def loaded(prefix):
    return sorted(m for m in sys.modules if m == prefix or m.startswith(prefix + "."))
for name in lower:
    importlib.import_module(name)
    server = loaded("modelmix.server")
    if server:
        leaks.append([name, server])
        break
for name in upper:
    importlib.import_module(name)
print(json.dumps({"leaks": leaks, "loaded": loaded("modelmix")}))
"""


def _all_modules() -> list[str]:
    names = ["modelmix"]
    for info in pkgutil.walk_packages(modelmix.__path__, "modelmix."):
        if info.name.rsplit(".", 1)[-1] != "__main__":  # running it starts the CLI
            names.append(info.name)
    return names


def _is_lower(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in LOWER)


def test_every_module_imports_and_the_lower_layers_never_import_the_server() -> None:
    names = _all_modules()
    lower = [n for n in names if _is_lower(n)]
    upper = [n for n in names if not _is_lower(n)]
    assert "modelmix.wire.openai_chat.client" in lower
    assert "modelmix.server.app" in upper
    src = str(Path(modelmix.__file__).resolve().parent.parent)
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps([lower, upper])],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": src},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["leaks"] == [], f"imports modelmix.server from below it: {report['leaks']}"
    assert set(names) <= set(report["loaded"])


def test_the_old_homes_of_the_wire_formats_are_gone() -> None:
    root = Path(modelmix.__file__).resolve().parent
    for old in (
        "server/openai_api.py",
        "server/anthropic_api.py",
        "providers/openai.py",
        "providers/anthropic.py",
        "providers/gemini.py",
        "simulated/openai_wire.py",
        "simulated/anthropic_wire.py",
        "simulated/gemini_wire.py",
    ):
        assert not (root / old).exists(), old
