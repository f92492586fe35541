"""The attack suite's servers: a real gateway built exactly as ``modelmix serve`` builds it
(``uvicorn_config``: header limit, shutdown deadline) in front of the simulated upstream and
the fault-injecting upstream (``fault_upstream.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelmix.config import Config, parse_config
from tests.attack.fault_upstream import FaultUpstream, start_fault_upstream
from tests.e2e.conftest import (  # noqa: F401 (simulator: a fixture)
    LoopThread,
    RunningGateway,
    e2e_config,
    simulator,
)

__all__ = ["HardenedGateway", "fault_config"]


class HardenedGateway(RunningGateway):
    """A gateway on a loopback port, served with the production uvicorn settings
    (``RunningGateway`` builds them with ``uvicorn_config``); a context manager."""

    def __init__(self, config: Config, env: dict[str, str] | None = None) -> None:
        super().__init__(config, env or {})

    def __enter__(self) -> HardenedGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="session")
def faults() -> Iterator[FaultUpstream]:
    loop = LoopThread()
    upstream: FaultUpstream = loop.run(start_fault_upstream())
    yield upstream
    loop.run(upstream.stop())
    loop.stop()


def fault_config(upstream: FaultUpstream, tmp: Path, *names: str, **extra: Any) -> Config:
    """Models named ``names`` on the fault upstream (priced $1 / $10 per million tokens)."""
    models = [
        {
            "name": name,
            "provider": "openai",
            "model": name,
            "base_url": upstream.base_url,
            "price": {"input": "1", "output": "10"},
        }
        for name in names
    ]
    data: dict[str, Any] = {
        "models": models,
        "ledger": {"path": str(tmp / "ledger.db"), "flush_interval": 0.05},
        "engine": {
            "retries": 1,
            "backoff_base": 0.01,
            "backoff_max": 0.02,
            "timeouts": {"first_token": 2.0, "total": 5.0},
        },
    }
    data.update(extra)
    return parse_config(data)


@pytest.fixture(scope="module")
def sim_gateway(
    simulator: Any,  # noqa: F811 (the e2e fixture)
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """Keyless (zero-config style) gateway on the simulated upstream."""
    tmp = tmp_path_factory.mktemp("attack")
    with HardenedGateway(e2e_config(simulator, tmp)) as running:
        yield running
