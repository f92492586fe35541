"""The dashboard in a real headless browser (Debian's chromium), from a real running gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.dashboard.conftest import ADMIN_KEY, DashboardGateway

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def _chat(url: str, content: str) -> None:
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": content}]})
    req = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=body.encode(),
        headers={"content-type": "application/json", "authorization": f"Bearer {ADMIN_KEY}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dashboard_renders_in_chromium(running: DashboardGateway, tmp_path: Path) -> None:
    for i in range(3):  # real requests through the gateway, on top of the prepared rows
        _chat(running.url, f"What is {i} + {i}?")
    assert running.gateway.ledger is not None
    running.gateway.ledger.flush()

    url = f"{running.url}/ui?key={ADMIN_KEY}&range=24h"
    shot = tmp_path / "dashboard.png"
    result = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1400,1800", url)
    assert shot.is_file(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 60_000, "the screenshot looks blank"  # an empty page is ~10 kB

    dom = _chromium(tmp_path, "--dump-dom", url).stdout
    assert "Spend over time" in dom and "Routing mix" in dom
    assert dom.count("<svg") >= 5  # the charts were rendered
    assert 'aria-label="spend by model"' in dom
    assert "no budgets configured" in dom
    assert "mm-" in dom  # the real requests' ids, in the recent list
    assert ADMIN_KEY not in dom  # the key never comes back in the page

    denied = _chromium(tmp_path / "other", "--dump-dom", f"{running.url}/ui").stdout
    assert "Admin key" in denied and "Spend over time" not in denied
