"""Alembic environment: migrations run on a sync connection handed in by
`dialer.store.migrate` (inside `AsyncConnection.run_sync`), or from the URL in
the alembic config when run by the `alembic` command itself."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from dialer.store.schema import metadata

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
