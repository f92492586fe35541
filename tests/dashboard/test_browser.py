"""The dashboard in a real headless browser (Debian's chromium), from a real running gateway.

The screenshot lands in the test's temporary directory; to refresh the one in the docs run
``MODELMIX_UPDATE_SCREENSHOT=1 python3 -m pytest tests/dashboard/test_browser.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from pathlib import Path

from tests.dashboard.conftest import ADMIN_KEY, DashboardGateway

DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def _chat(url: str, content: str, key: str, tags: dict[str, str]) -> None:
    # max_tokens: a hard budget reserves a request's worst case (docs/security.md)
    messages = [{"role": "user", "content": content}]
    body = json.dumps({"model": "auto", "messages": messages, "max_tokens": 200})
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    headers |= {f"x-modelmix-tag-{k}": v for k, v in tags.items()}
    req = urllib.request.Request(f"{url}/v1/chat/completions", data=body.encode(), headers=headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def _run(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_dashboard_renders_in_chromium(
    running: DashboardGateway, chromium: str, tmp_path: Path
) -> None:
    keys = running.gateway.keys
    assert keys is not None
    _, search_key = keys.create(
        "search-bot",
        team="search",
        budgets=[{"kind": "hard", "period": "month", "limit_usd": "0.05"}],
    )
    for i in range(4):  # real requests through the gateway, on top of the prepared rows
        _chat(running.url, f"What is {i} + {i}?", search_key, {"feature": "faq"})
    assert running.gateway.ledger is not None
    running.gateway.ledger.flush()

    url = f"{running.url}/ui?key={ADMIN_KEY}&range=24h"
    shot = tmp_path / "dashboard.png"
    result = _run(chromium, tmp_path / "p1", f"--screenshot={shot}", "--window-size=1400,2820", url)
    assert shot.is_file(), result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 60_000, "the screenshot looks blank"  # an empty page is ~10 kB
    if os.environ.get("MODELMIX_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, DOCS_SHOT)

    dom = _run(chromium, tmp_path / "p2", "--dump-dom", url).stdout
    assert "Spend over time" in dom and "Routing mix" in dom
    assert dom.count("<svg") >= 5  # the charts were rendered
    assert 'aria-label="spend by model"' in dom
    # the configured budgets, with the spend the ledger and the live requests put on them
    for name in ("company", "team:search:soft:total", "team:ads:hard:total", "tag:a:paced"):
        assert name in dom
    assert "no budgets configured" not in dom
    assert "key search-bot: hard month" in dom  # the key's own budget, from the key store
    assert "mm-" in dom  # the real requests' ids, in the recent list
    assert ADMIN_KEY not in dom and search_key not in dom  # keys never come back in the page

    denied = _run(chromium, tmp_path / "p3", "--dump-dom", f"{running.url}/ui").stdout
    assert "Admin key" in denied and "Spend over time" not in denied
