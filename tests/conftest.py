"""Fixtures for every test: a PostgreSQL server started once per session (``tests/pg.py``),
a Redis server per test, and the per-user data directory (``modelmix.paths``) pointed at a
temporary directory, so no test reads or writes the real ``~/.local/share/modelmix``.

``pg_server`` starts it on first use and fails the test if it cannot (never skips);
``pg_url`` is a fresh, empty database on it for one test.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelmix.ledger.db import Location, is_postgres
from tests.pg import PgServer
from tests.state.redis_server import RedisServer

os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="modelmix-test-data-")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = PgServer()
    try:
        server.start()
    except Exception as exc:
        server.stop()
        pytest.fail(f"could not start PostgreSQL for the tests: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    return pg_server.new_database()


#: The ledger backends a parametrised fixture runs a test module on.
BACKENDS = ("sqlite", "postgresql")


def ledger_location(request: pytest.FixtureRequest, directory: Path) -> Location:
    """A fresh ledger location for ``request.param``: a SQLite file in ``directory`` or an
    empty database on the test PostgreSQL server."""
    if request.param == "postgresql":
        server: PgServer = request.getfixturevalue("pg_server")
        return server.new_database()
    return directory / "ledger.db"


@pytest.fixture(params=BACKENDS)
def ledger_at(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """A fresh ledger on each backend in turn (the test runs once per backend)."""
    return ledger_location(request, tmp_path)


def ledger_settings(location: Location, data_dir: Path, **ledger: Any) -> dict[str, Any]:
    """Config entries for a ledger at ``location``: ``ledger.path`` or ``ledger.url``, and the
    data directory (a PostgreSQL ledger's budget counters file lives there)."""
    key = "url" if is_postgres(location) else "path"
    return {"ledger": {key: str(location), **ledger}, "data_dir": str(data_dir)}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A fresh redis-server for one test (fails, never skips, if it cannot start)."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()
