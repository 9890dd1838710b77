"""What differs between the store's two databases, SQLite (the default) and PostgreSQL.

Every statement elsewhere in dialer.store is written once in SQLAlchemy Core and
reads the same on both; the few things that cannot are here, and nowhere else:
how a new engine is made and set up, the insert that skips a row already there, strings
longer than their column, and how rows are locked while a transaction takes them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

SQLITE = "sqlite"
POSTGRESQL = "postgresql"
SUPPORTED = (SQLITE, POSTGRESQL)


def shown(url: URL) -> str:
    """The URL as logs and errors may show it: the password masked."""
    return url.render_as_string(hide_password=True)


def check_supported(url: URL) -> None:
    if url.get_backend_name() not in SUPPORTED:
        raise ValueError(
            f"{url.get_backend_name()} is not a supported database (use sqlite+aiosqlite:// or postgresql+asyncpg://)"
        )


def engine_options(url: URL) -> dict[str, Any]:
    """create_async_engine's options for the database at `url`."""
    if url.get_backend_name() == POSTGRESQL:
        # A server restart (or failover) leaves every pooled connection dead; each is checked
        # when taken from the pool, so no write fails for having drawn one.
        return {"pool_pre_ping": True}
    return {}


def prepare(engine: AsyncEngine) -> None:
    """Set up a new engine for its database."""
    if engine.dialect.name == SQLITE:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets `dialer report` read while the daemon writes; foreign keys are
    # off by default in SQLite. PostgreSQL does both by itself.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def insert_ignoring_duplicates(conn: AsyncConnection, table: Any) -> Any:
    """INSERT ... ON CONFLICT DO NOTHING in the connection's dialect."""
    if conn.dialect.name == POSTGRESQL:
        return postgresql.insert(table).on_conflict_do_nothing()
    return sqlite.insert(table).on_conflict_do_nothing()


def fit(table: Any, values: dict[str, Any]) -> dict[str, Any]:
    """`values` for `table` with each string cut to its column's length.

    PostgreSQL refuses a string longer than its VARCHAR (the whole write fails);
    SQLite keeps it whole. Text from outside (Asterisk's hangup and refusal
    messages, channel names) is cut the same way on both instead.
    """
    out = dict(values)
    for name, value in values.items():
        length = getattr(table.c[name].type, "length", None) if name in table.c else None
        if isinstance(value, str) and length is not None and len(value) > length:
            out[name] = value[:length]
    return out


def claiming(query: Select[Any], *tables: Any) -> Select[Any]:
    """`query` taking the rows of `tables` it returns for this transaction alone.

    On PostgreSQL, FOR UPDATE SKIP LOCKED: two daemons leasing at the same moment
    each get rows the other has not locked, instead of both reading the same rows
    (one would then wait, find them gone and lease nothing). SQLite has a single
    writer and no row locks; SQLAlchemy renders no clause there, and the guarded
    update in `dialer.store.lead_transitions` stays the check on both.
    """
    return query.with_for_update(skip_locked=True, of=list(tables) or None)
