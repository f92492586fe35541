"""A real gateway (``create_app``: the dashboard as ``modelmix serve`` mounts it) on a loopback
port, over a ledger with known rows and with budgets configured; and Debian's chromium."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from modelmix.gateway import Gateway
from modelmix.server.app import create_app
from tests.dashboard.ledger_data import config, fill

ADMIN_KEY = "mm-admin-test-key"

#: Budgets for the dashboard: the prepared rows spend $0.025 for team search and $0.0027 for
#: team ads (two hours ago), $0.02813 in all.
BUDGETS: dict[str, Any] = {
    "global": [{"kind": "hard", "period": "month", "limit_usd": "0.10", "name": "company"}],
    "teams": {
        "search": [{"kind": "soft", "period": "total", "limit_usd": "0.03"}],
        "ads": [{"kind": "hard", "period": "total", "limit_usd": "0.004"}],
    },
    "tags": {"a": [{"kind": "paced", "period": "month", "limit_usd": "0.50"}]},
}


class DashboardGateway:
    """uvicorn in a background thread serving a real Gateway (simulated upstreams)."""

    def __init__(self, ledger: Path) -> None:
        cfg = config(ledger, server={"admin_key_env": "MM_ADMIN"}, budgets=BUDGETS)
        self.gateway = Gateway(cfg, env={"MM_ADMIN": ADMIN_KEY})
        app = create_app(self.gateway)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False)  # type: ignore[arg-type]
        )
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.server.started, "gateway did not start"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardGateway]:
    ledger = tmp_path_factory.mktemp("dash") / "ledger.db"
    fill(ledger, time.time() - 2 * 3600)
    gw = DashboardGateway(ledger)
    yield gw
    gw.stop()


def _apt_get(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(["apt-get", *args], capture_output=True, text=True, env=env, timeout=1800)


@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing. A failed install fails the
    tests that need it (it is not a reason to skip them)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if shutil.which("apt-get") is None:
        pytest.fail("chromium is not installed and there is no apt-get to install it")
    if os.geteuid() != 0:
        pytest.fail("chromium is not installed; run the tests as root so apt-get can install it")
    install = ("install", "-y", "--no-install-recommends", "chromium")
    result = _apt_get(*install)
    if result.returncode != 0:  # stale package lists: update, then try again
        _apt_get("update")
        result = _apt_get(*install)
    found = shutil.which("chromium")
    if result.returncode != 0 or found is None:
        pytest.fail(f"apt-get could not install chromium:\n{result.stderr[-3000:]}")
    return found
