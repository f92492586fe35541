"""A real gateway (uvicorn on a loopback port) in front of a real simulated upstream (its own
server on another port), each on its own event loop in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from modelmix.config import Config, parse_config
from modelmix.gateway import Gateway
from modelmix.server.app import create_app
from modelmix.server.http_limits import uvicorn_config
from modelmix.simulated import Simulator, start_simulator


class LoopThread:
    """An asyncio loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Any, timeout: float = 30) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    loop = LoopThread()
    sim: Simulator = loop.run(start_simulator())
    yield sim
    loop.run(sim.stop())
    loop.stop()


class RunningGateway:
    def __init__(self, config: Config, env: dict[str, str]) -> None:
        self.gateway = Gateway(config, env=env)
        app = create_app(self.gateway)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        # the production uvicorn settings (header limit, shutdown deadline): as `serve` runs
        self.server = uvicorn.Server(
            uvicorn_config(app, config, log_level="warning", lifespan="on", access_log=False)
        )
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            threading.Event().wait(0.01)
        assert self.server.started, "gateway did not start"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def flush(self) -> None:
        assert self.gateway.ledger is not None
        self.gateway.ledger.flush()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def e2e_config(sim: Simulator, tmp: Path, **extra: Any) -> Config:
    def model(name: str, kind: str, upstream: str, **kw: Any) -> dict[str, Any]:
        return {
            "name": name,
            "provider": kind,
            "model": upstream,
            "base_url": sim.base_url(kind),
            **kw,
        }

    models = [
        # real catalog model ids, so costs come from genai-prices
        model("gpt-4o-mini", "openai", "gpt-4o-mini", capabilities={"vision": True}),
        model(
            "claude-haiku",
            "anthropic",
            "claude-3-5-haiku-20241022",
            capabilities={"json_object": False, "json_schema": False},
        ),
        model("gemini-flash", "gemini", "gemini-1.5-flash"),
        model("broken", "openai", "sim-500", price={"input": "1", "output": "1"}),
        model("broken-direct", "openai", "sim-500", price={"input": "1", "output": "1"}),
        model("limited", "openai", "sim-429", price={"input": "1", "output": "1"}),
        model("cutter", "openai", "sim-cut", price={"input": "1", "output": "1"}),
        model("cutter-anthropic", "anthropic", "sim-cut", price={"input": "1", "output": "1"}),
        model("sluggish", "openai", "sim-timeout", price={"input": "1", "output": "1"}),
        model("unpriced", "openai", "house-model-7b"),  # in no catalog, no price set
        model("keyless", "openai", "gpt-4o-mini", api_key_env="MM_UNSET_KEY"),
    ]
    routes = [
        {"name": "auto", "models": ["broken", "gpt-4o-mini"]},
        {"name": "to-claude", "models": ["claude-haiku"]},
        {"name": "all-broken", "models": ["broken", "limited"]},
        {"name": "nothing-callable", "models": ["keyless"]},
    ]
    data: dict[str, Any] = {
        "models": models,
        "routes": routes,
        "ledger": {"path": str(tmp / "ledger.db"), "flush_interval": 0.05},
        "engine": {
            "retries": 1,
            "backoff_base": 0.01,
            "backoff_max": 0.02,
            "timeouts": {"first_token": 1.0, "total": 1.5},
        },
    }
    data.update(extra)
    return parse_config(data)


@pytest.fixture(scope="module")
def gateway(
    simulator: Simulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("gw")
    running = RunningGateway(e2e_config(simulator, tmp), env={})
    yield running
    running.stop()
