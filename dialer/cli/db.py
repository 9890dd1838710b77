"""`dialer db upgrade`: bring the database's schema to the newest revision.

`dialer run` does the same on start; this command lets an operator upgrade
(and see the revisions) before starting a new release, e.g. from a package's
post-install step.
"""

from __future__ import annotations

import argparse
import asyncio

from alembic.runtime.migration import MigrationContext
from sqlalchemy.exc import SQLAlchemyError

from dialer.cli.context import CommandError, add_config_argument, fail, read_config
from dialer.store.store import Store, StoreError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="database schema migrations")
    actions = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="apply every pending migration")
    add_config_argument(upgrade)
    upgrade.set_defaults(func=run_upgrade)


async def revisions(store: Store) -> list[str]:
    try:
        async with store.engine.connect() as conn:
            heads = await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_heads())
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the schema revision: {exc}") from exc
    return sorted(heads)


async def upgrade(url: str) -> tuple[list[str], list[str]]:
    """The revisions before and after upgrading the database at `url`."""
    store = await Store.open(url, upgrade=False)
    try:
        before = await revisions(store)
    finally:
        await store.close()
    store = await Store.open(url)
    try:
        return before, await revisions(store)
    finally:
        await store.close()


def run_upgrade(args: argparse.Namespace) -> int:
    try:
        config = read_config(args.config)
        before, after = asyncio.run(upgrade(config.database.url))
    except (CommandError, StoreError) as exc:
        return fail(str(exc))
    shown = ", ".join(after) or "empty"
    if before == after:
        print(f"database already at {shown}")
    else:
        print(f"database upgraded from {', '.join(before) or 'empty'} to {shown}")
    return 0
