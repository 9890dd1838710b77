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


def _database(request: pytest.FixtureRequest, tmp_path: Path, *, migrated: bool) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/dialer.db"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.database_url(migrated=migrated)
    yield url
    # Each copy is a few MB: a session's worth would fill the disk for nothing.
    if migrated:
        server.release(url)
    else:
        server.drop(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of the store's: a new SQLite file, or a new database on the session's PostgreSQL
    already at the migrations' head (`Store.open` still runs them, finding nothing to do)."""
    yield from _database(request, tmp_path, migrated=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database: the migrations run from nothing."""
    yield from _database(request, tmp_path, migrated=False)
