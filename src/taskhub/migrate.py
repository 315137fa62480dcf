"""Run Alembic migrations from code: the app, the CLI and the tests all go through here."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from taskhub.config import Settings
from taskhub.db import make_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Search objects only the database knows (migration 4e7b1d9c2a60, taskhub/search.py): the
# ORM never maps them, and autogenerate must not drop them. PostgreSQL: the generated
# `search` columns and their GIN indexes; SQLite: the FTS5 tables and their shadow tables.
SEARCHED_TABLES = ("tasks", "products")
DATABASE_ONLY_INDEXES = frozenset(f"ix_{table}_search" for table in SEARCHED_TABLES)
# Expression indexes alembic cannot compare: PostgreSQL deparses their CASE over several
# lines, which its text comparison never matches. tests/test_query_plans.py shows them used.
UNCOMPARED_INDEXES = frozenset(
    {"ix_tasks_priority", "ix_tasks_project_id_priority", "ix_tasks_assignee_id_priority"}
)


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def is_database_only_table(name: str) -> bool:
    """Whether a table is one of the SQLite full-text tables (virtual or shadow)."""
    return any(name.startswith(f"{table}_search") for table in SEARCHED_TABLES)


def include_object_for(dialect: str) -> Callable[..., bool]:
    """Alembic's filter on a database: what autogenerate compares. Not the database-only
    search objects, nor the indexes it cannot compare, nor an index the models declare for
    another database only (`Index.ddl_if`)."""

    def include_object(
        obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
    ) -> bool:
        if type_ == "index":
            declared = compare_to if reflected else obj
            only = getattr(getattr(declared, "_ddl_if", None), "dialect", None)
            if name in UNCOMPARED_INDEXES or (only is not None and only != dialect):
                return False
        if not reflected or name is None:
            return True
        if type_ == "table":
            return not is_database_only_table(name)
        if type_ == "column":
            return not (obj.table.name in SEARCHED_TABLES and name == "search")
        if type_ == "index":
            return name not in DATABASE_ONLY_INDEXES
        return True

    return include_object


def head_revision() -> str | None:
    """The newest revision in the migration scripts."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at."""
    return MigrationContext.configure(connection).get_current_revision()


async def upgrade(settings: Settings, revision: str = "head") -> None:
    """Migrate the configured database up to `revision`."""
    await _run(settings, lambda cfg: command.upgrade(cfg, revision))


async def downgrade(settings: Settings, revision: str = "base") -> None:
    """Migrate the configured database down to `revision`."""
    await _run(settings, lambda cfg: command.downgrade(cfg, revision))


async def _run(settings: Settings, action: object) -> None:
    engine = make_engine(settings, pool=False)
    try:
        async with engine.connect() as connection:

            def _with_connection(sync_connection: Connection) -> None:
                config = alembic_config()
                config.attributes["connection"] = sync_connection
                action(config)  # type: ignore[operator]

            await connection.run_sync(_with_connection)
            await connection.commit()
    finally:
        await engine.dispose()
