from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.state.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test (fails, never skips, if it cannot start)."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
