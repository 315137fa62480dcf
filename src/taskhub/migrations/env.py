"""Alembic environment: async engines, batch mode so that SQLite can alter tables."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

import taskhub.models  # noqa: F401  (registers every table on the metadata)
from taskhub.config import get_settings
from taskhub.db import Base, make_engine
from taskhub.migrate import include_object_for

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        include_object=include_object_for(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    engine = make_engine(get_settings(), pool=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Use the connection handed over by taskhub.migrate, or open one from the settings."""
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported; run `taskhub migrate`")
run_migrations_online()
