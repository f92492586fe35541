"""A gateway with the dashboard, on a loopback port, over a ledger with known rows."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.routing import Route

from modelmix.dashboard import dashboard_routes
from modelmix.gateway import Gateway
from modelmix.server.app import create_app
from modelmix.server.auth import Authenticator
from tests.dashboard.ledger_data import config, fill

ADMIN_KEY = "mm-admin-test-key"


def with_dashboard(gateway: Gateway, admin_key: str) -> object:
    """The gateway's ASGI app, with the dashboard routes added unless create_app has them."""
    app = create_app(gateway)
    routes = app.rest.router.routes
    if not any(isinstance(r, Route) and r.path == "/ui" for r in routes):
        auth = Authenticator(admin_key, gateway.keys, None)
        routes.extend(dashboard_routes(gateway, auth))
    return app


class DashboardGateway:
    """uvicorn in a background thread serving a real Gateway (simulated upstreams)."""

    def __init__(self, ledger: Path) -> None:
        cfg = config(ledger, server={"admin_key_env": "MM_ADMIN"})
        self.gateway = Gateway(cfg, env={"MM_ADMIN": ADMIN_KEY})
        app = with_dashboard(self.gateway, ADMIN_KEY)
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
