"""Run Alembic migrations from code: the app, the CLI and the tests all go through here."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from taskhub.config import Settings
from taskhub.db import make_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


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
