"""The migrations go up from empty to head, down to base, and up again, on both databases,
and build exactly what the models describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from taskhub.config import Settings
from taskhub.db import Base
from taskhub.migrate import (
    current_revision,
    downgrade,
    head_revision,
    include_object_for,
    is_database_only_table,
    upgrade,
)
from tests.conftest import create_pg_database, drop_pg_database, make_settings, pg_url

EXPECTED_TABLES = {"users", "projects", "project_members", "tasks", "task_activity", "outbox"}


async def schema_state(settings: Settings) -> tuple[set[str], str | None]:
    """The tables that exist (Alembic's own excepted) and the recorded revision."""
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as conn:

            def read(sync_conn: Connection) -> tuple[set[str], str | None]:
                names = set(inspect(sync_conn).get_table_names()) - {"alembic_version"}
                # SQLite's full-text tables are the database's own (taskhub.migrate).
                tables = {name for name in names if not is_database_only_table(name)}
                return tables, current_revision(sync_conn)

            return await conn.run_sync(read)
    finally:
        await engine.dispose()


async def round_trip(database_url: str) -> None:
    """Empty → head → base → head, checking the tables and the revision at each step."""
    settings = make_settings(database_url=database_url)
    assert await schema_state(settings) == (set(), None)

    await upgrade(settings)
    tables, revision = await schema_state(settings)
    assert revision == head_revision()
    assert EXPECTED_TABLES <= tables
    # Every model's table is built by the migrations, and nothing else is.
    assert tables == set(Base.metadata.tables)

    await downgrade(settings, "base")
    assert await schema_state(settings) == (set(), None)

    await upgrade(settings)
    tables, revision = await schema_state(settings)
    assert revision == head_revision()
    assert tables == set(Base.metadata.tables)
    # The models and the migrations agree: autogenerate would write nothing.
    assert await autogenerate_diff(settings) == []


async def autogenerate_diff(settings: Settings) -> list[Any]:
    """What `alembic revision --autogenerate` would find between the database and the models."""
    engine = create_async_engine(settings.database_url)
    try:
        async with engine.connect() as conn:

            def compare(sync_conn: Connection) -> list[Any]:
                include_object = include_object_for(sync_conn.dialect.name)
                options = {"compare_type": True, "include_object": include_object}
                context = MigrationContext.configure(sync_conn, opts=options)
                return list(compare_metadata(context, Base.metadata))

            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


async def test_sqlite_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    await round_trip(f"sqlite+aiosqlite:///{tmp_path / 'migrations.db'}")


@pytest.mark.pg
async def test_postgres_upgrade_downgrade_upgrade(pg_server: str) -> None:
    name = await create_pg_database(pg_server)
    try:
        await round_trip(pg_url(pg_server, name))
    finally:
        await drop_pg_database(pg_server, name)
