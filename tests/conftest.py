"""Fixtures for every test: the store's database, SQLite or a private PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.postgres_server import PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One private PostgreSQL cluster for the session, started on first use."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of the store's: a new SQLite file, or a new database on the session's PostgreSQL
    already at the migrations' head (`Store.open` still runs them, finding nothing to do)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/dialer.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.database_url(migrated=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: the migrations run from nothing."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/dialer.db"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.database_url()
