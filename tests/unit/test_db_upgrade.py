"""`dialer db upgrade`: a database made by the first release reaches today's heads with its data,
on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from dialer.cli.main import main
from dialer.store import schema
from dialer.store.migrate import alembic_config
from dialer.store.store import Store

ROWS = {
    "customers": [
        {"id": 1, "phone": "+15550001", "external_id": "C-1", "name": "Ada", "tier": "gold", "value": 1250.5,
         "timezone": "Europe/Paris", "created_at": "2025-01-02 03:04:05.000000"},
    ],
    "campaigns": [
        {"id": 1, "name": "spring", "type": "telemarketing", "created_at": "2025-01-02 03:04:05.000000",
         "updated_at": "2025-01-02 03:04:05.000000"},
    ],
    "leads": [
        {"id": 1, "campaign_id": 1, "customer_id": 1, "phone": "+15550001", "state": "done", "attempts": 1,
         "final_outcome": "answered", "data": '{"plan": "b"}', "created_at": "2025-01-02 03:04:05.000000"},
    ],
    "call_attempts": [
        {"id": "a" * 32, "lead_id": 1, "campaign_id": 1, "phone": "+15550001", "attempt_no": 1, "state": "ended",
         "outcome": "answered", "agent_id": "agent1", "dialed_at": "2025-01-02 03:04:05.000000",
         "bridged_at": "2025-01-02 03:04:09.000000", "ended_at": "2025-01-02 03:05:00.000000", "abandoned": 0},
    ],
    "agents": [
        {"id": "agent1", "name": "Alice", "interface": "PJSIP/agent1", "state": "logged_out",
         "state_changed_at": "2025-01-02 03:04:05.000000"},
    ],
}


def _columns(row: dict[str, object]) -> str:
    return ", ".join(row)


@pytest.fixture
def old_database(tmp_path: Path) -> Path:
    """A database at revision 0001 with one row in every table."""
    path = tmp_path / "old.db"
    cfg = alembic_config(f"sqlite:///{path}")
    command.upgrade(cfg, "0001")
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for table, rows in ROWS.items():
            for row in rows:
                placeholders = ", ".join(f":{k}" for k in row)
                conn.execute(sa.text(f"INSERT INTO {table} ({_columns(row)}) VALUES ({placeholders})"), row)
    engine.dispose()
    return path


def test_an_old_database_upgrades_to_every_head_and_keeps_its_data(
    old_database: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "dialer.yaml"
    config.write_text(
        "ami: [{username: dialer, secret: x}]\n"
        f"database: {{url: 'sqlite+aiosqlite:///{old_database}'}}\n"
    )
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    heads = sorted(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert capsys.readouterr().out.strip() == f"database upgraded from 0001 to {', '.join(heads)}"

    engine = sa.create_engine(f"sqlite:///{old_database}")
    with engine.connect() as conn:
        stored = sorted(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
        assert stored == heads
        for table, rows in ROWS.items():
            for row in rows:
                found = conn.execute(
                    sa.text(f"SELECT {_columns(row)} FROM {table} WHERE id = :id"), {"id": row["id"]}
                ).mappings().one()
                assert dict(found) == row, table
    engine.dispose()

    # A second run has nothing to do.
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == f"database already at {', '.join(heads)}"


def test_an_unusable_database_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "not-a-db"
    bad.write_text("this is not SQLite")
    config = tmp_path / "dialer.yaml"
    config.write_text(f"ami: [{{username: dialer, secret: x}}]\ndatabase: {{url: 'sqlite+aiosqlite:///{bad}'}}\n")
    assert main(["db", "upgrade", "--config", str(config)]) == 2
    assert capsys.readouterr().err.startswith("dialer: cannot ")


TYPED = {
    "customers": {"id": 1, "phone": "+15550001", "external_id": "C-1", "name": "Ada", "tier": "gold",
                  "value": 1250.5, "timezone": "Europe/Paris", "created_at": datetime(2025, 1, 2, 3, 4, 5)},
    "campaigns": {"id": 1, "name": "spring", "type": "telemarketing", "created_at": datetime(2025, 1, 2, 3, 4, 5),
                  "updated_at": datetime(2025, 1, 2, 3, 4, 5)},
    "leads": {"id": 1, "campaign_id": 1, "customer_id": 1, "phone": "+15550001", "state": "done", "attempts": 1,
              "final_outcome": "answered", "data": {"plan": "b"}, "created_at": datetime(2025, 1, 2, 3, 4, 5)},
    "call_attempts": {"id": "a" * 32, "lead_id": 1, "campaign_id": 1, "phone": "+15550001", "attempt_no": 1,
                      "state": "ended", "outcome": "answered", "agent_id": "agent1",
                      "dialed_at": datetime(2025, 1, 2, 3, 4, 5), "bridged_at": datetime(2025, 1, 2, 3, 4, 9),
                      "ended_at": datetime(2025, 1, 2, 3, 5), "abandoned": False},
}


def _only(table: str, row: dict[str, object]) -> sa.TableClause:
    """`table` with only `row`'s columns (typed as today's schema types them), none of today's defaults."""
    columns = schema.metadata.tables[table].c
    return sa.table(table, *(sa.column(name, columns[name].type) for name in row))


async def _at_first_revision_with_rows(url: str) -> None:
    engine = create_async_engine(url)

    def upgrade(sync: sa.Connection) -> None:
        cfg = alembic_config()
        cfg.attributes["connection"] = sync
        command.upgrade(cfg, "0001")

    try:
        async with engine.begin() as conn:
            await conn.run_sync(upgrade)
        async with engine.begin() as conn:
            for table, row in TYPED.items():
                await conn.execute(sa.insert(_only(table, row)).values(**row))
    finally:
        await engine.dispose()


async def _stored(url: str) -> dict[str, dict[str, object]]:
    store = await Store.open(url, upgrade=False)
    try:
        async with store.engine.connect() as conn:
            return {
                table: dict(
                    (await conn.execute(sa.select(*_only(table, row).c))).mappings().one()
                )
                for table, row in TYPED.items()
            }
    finally:
        await store.close()


def test_the_first_releases_schema_upgrades_to_every_head_on_either_database(
    empty_store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_at_first_revision_with_rows(empty_store_url))
    config = tmp_path / "dialer.yaml"
    config.write_text(yaml.safe_dump({"ami": [{"username": "dialer", "secret": "x"}], "database": {"url": empty_store_url}}))
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    heads = sorted(ScriptDirectory.from_config(alembic_config()).get_heads())
    assert capsys.readouterr().out.strip() == f"database upgraded from 0001 to {', '.join(heads)}"
    assert asyncio.run(_stored(empty_store_url)) == TYPED
    assert main(["db", "upgrade", "--config", str(config)]) == 0
    assert capsys.readouterr().out.strip() == f"database already at {', '.join(heads)}"
