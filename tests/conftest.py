"""Fixtures for every test: a PostgreSQL server started once per session (``tests/pg.py``).

``pg_server`` starts it on first use and fails the test if it cannot (never skips);
``pg_url`` is a fresh, empty database on it for one test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from modelmix.ledger.db import Location
from tests.pg import PgServer


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
