"""Declarative base, engine and session factories."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import DateTime, MetaData, Table, event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from taskhub.config import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that always comes back in UTC, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, _dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of every ORM model; constraint names are stable across databases."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def on_postgresql(session: AsyncSession) -> bool:
    """Whether the session's database is PostgreSQL (else the embedded SQLite)."""
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def make_engine(settings: Settings, *, pool: bool = True, driver_pool: bool = False) -> AsyncEngine:
    """Create the async engine for the configured database.

    `driver_pool`: the process will also attach a driver pool (taskhub.driver), which then
    takes its share of the DB_POOL_SIZE budget (`pool_sizes`).
    """
    if settings.is_sqlite:
        engine = create_async_engine(
            settings.database_url,
            connect_args={"timeout": 30},
            poolclass=None if pool else NullPool,
        )
        _sqlite_pragmas(engine)
        return engine
    connect_args = pg_connect_args(settings)
    if settings.db_pgbouncer:
        # SQLAlchemy's asyncpg adapter keeps prepared statements of its own as well. With
        # both caches off it prepares every statement unnamed (see pg_connect_args).
        connect_args["prepared_statement_cache_size"] = 0
    kwargs: dict[str, Any] = {"connect_args": connect_args, "pool_pre_ping": False}
    if pool:
        kwargs.update(
            pool_size=pool_sizes(settings, driver_pool=driver_pool).sqlalchemy,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_timeout_seconds,
        )
    else:
        kwargs["poolclass"] = NullPool
    return create_async_engine(settings.database_url, **kwargs)


@dataclass(frozen=True, slots=True)
class PoolSizes:
    """How a process's DB_POOL_SIZE connections are split between its two pools."""

    driver: int
    sqlalchemy: int


def pool_sizes(settings: Settings, *, driver_pool: bool) -> PoolSizes:
    """One budget per process: DB_POOL_SIZE connections in all, whatever the pools.

    A process with a driver pool (the server, on PostgreSQL) gives it three quarters: the
    hot paths run there; ORM sessions take the rest (at least one each).
    """
    total = settings.db_pool_size
    if not driver_pool:
        return PoolSizes(driver=0, sqlalchemy=total)
    driver = max(1, total * 3 // 4)
    return PoolSizes(driver=driver, sqlalchemy=total - driver)


def pg_connect_args(settings: Settings) -> dict[str, Any]:
    """asyncpg connect arguments: connect and statement timeouts, the application name;
    behind PgBouncer (DB_PGBOUNCER), no statement cache.

    PgBouncer in transaction mode gives each transaction (and each statement outside one)
    whichever server connection is free, and version 1.18 does not track prepared
    statements. A named statement that asyncpg caches lives on one server connection only:
    reused later it is "does not exist" on another, or "already exists" when a second
    client picks the same name there. With `statement_cache_size=0` asyncpg prepares each
    statement unnamed: it describes it with a Flush rather than a Sync, then sends Parse
    again with Bind and Execute before the one Sync. PgBouncer moves a client to another
    server connection only after a Sync outside a transaction, so an unnamed statement never
    outlives the exchange that runs it, inside a transaction or not.
    """
    args: dict[str, Any] = {
        "timeout": settings.db_timeout_seconds,
        "command_timeout": max(settings.db_timeout_seconds * 6, 30),
        "server_settings": {"application_name": "taskhub"},
    }
    if settings.db_pgbouncer:
        args["statement_cache_size"] = 0
    return args


def _sqlite_pragmas(engine: AsyncEngine) -> None:
    """WAL, foreign keys, and BEGIN IMMEDIATE so that concurrent writers queue, never fail."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A single read on an AUTOCOMMIT connection (taskhub.driver) needs no transaction.
        if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(
    engine: AsyncEngine, *, sync_session_class: type[Session] = Session
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded attributes after commit (responses read them)."""
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, sync_session_class=sync_session_class
    )


def table_of(model: type[Base]) -> Table:
    """The Core table of a model, for plain INSERTs on hot paths (no unit of work)."""
    return cast(Table, model.__table__)
