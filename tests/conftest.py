"""Fixtures for every test: a PostgreSQL server started once per session (``tests/pg.py``).

``pg_server`` starts it on first use and fails the test if it cannot (never skips);
``pg_url`` is a fresh, empty database on it for one test.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
