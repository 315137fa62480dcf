"""Hot paths run their SQL straight on the database driver.

A `DriverQuery` is an ordinary SQLAlchemy Core statement, written once. On PostgreSQL it is
compiled once and executed on an asyncpg connection, so it costs what it costs in bare
asyncpg: no ORM, no per-call compilation, no extra round trips.

- `fetch(engine, ...)` borrows a pooled connection for one statement and gives it back, with
  no transaction: the current-user lookup on every request, lists, and single-statement
  writes (order creation).
- `pooled(engine, transaction=True)` borrows one for several statements in one transaction.
- `run(session, ...)` / `run_many(session, ...)` execute inside the session's transaction, on
  its connection: the order write path and the workers' reservation path. The transaction is
  always opened by SQLAlchemy (its first statement goes through the session), so atomicity
  and commit/rollback stay SQLAlchemy's.

Parameters get SQLAlchemy's bind processing (JSON, UTC timestamps), and driver errors are
mapped like SQLAlchemy's: refused values are 422, a broken connection is 503 and is dropped
from the pool. On other databases (the embedded SQLite) the same statements run through
SQLAlchemy as usual.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

import asyncpg
from sqlalchemy import ClauseElement, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.util import greenlet_spawn

from taskhub.config import Settings
from taskhub.db import pg_connect_args
from taskhub.errors import ServiceUnavailable, Unprocessable

Row = Mapping[str, Any]


class DriverQuery:
    """A Core statement that runs on the raw asyncpg connection on PostgreSQL."""

    def __init__(self, statement: ClauseElement) -> None:
        # Typed loosely: SQLAlchemy's overloads do not cover 'any statement'.
        self.statement: Any = statement
        self._compiled: _Compiled | None = None

    async def fetch(self, engine: AsyncEngine, **params: Any) -> Sequence[Row]:
        """All rows of a SELECT on a pooled connection, as mappings keyed by column label."""
        return await self._fetch_pooled(engine, params)

    async def run(self, session: AsyncSession, **params: Any) -> Sequence[Row]:
        """Run the statement (also an INSERT or UPDATE) inside the session's transaction.

        On PostgreSQL the first statement of a transaction goes through SQLAlchemy, which
        opens it; once it is open, statements go straight to the driver, on the same
        connection and in the same transaction. Returns the RETURNING rows, if any.
        """
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            raw = await connection.get_raw_connection()
            in_tx: Any = raw.driver_connection
            if in_tx.is_in_transaction():
                try:
                    return await self._run(in_tx, connection.dialect, params)
                except _DriverFailure:
                    await connection.invalidate()
                    raise _unavailable() from None
        result: Any = await session.execute(self.statement, params)
        if not result.returns_rows:
            return []
        return cast(Sequence[Row], result.mappings().all())

    async def run_many(self, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
        """Run the statement once per parameter set (executemany), in the transaction."""
        if len(rows) == 1:
            # asyncpg's executemany pipelines; for one row a plain execution is cheaper.
            await self.run(session, **rows[0])
            return
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            raw = await connection.get_raw_connection()
            driver: Any = raw.driver_connection
            if driver.is_in_transaction():
                compiled = self._compile(connection.dialect)
                await driver.executemany(compiled.sql, [compiled.args(r) for r in rows])
                return
        await session.execute(self.statement, list(rows))

    async def fetch_one(self, engine: AsyncEngine, **params: Any) -> Row | None:
        """The first row, or None."""
        rows = await self.fetch(engine, **params)
        return rows[0] if rows else None

    async def _fetch_pooled(self, engine: AsyncEngine, params: dict[str, Any]) -> Sequence[Row]:
        if engine.dialect.name != "postgresql":
            async with engine.connect() as connection:
                autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
                result = await autocommit.execute(self.statement, params)
                return cast(Sequence[Row], result.mappings().all())
        driver_pool = _driver_pools.get(engine.sync_engine)
        if driver_pool is None:
            async with pooled(engine) as connection:
                return await connection.run(self, **params)
        # Every authenticated request comes here: no context managers on the way.
        driver = await driver_pool.acquire()
        try:
            return await self._run(driver, engine.dialect, params)
        except _DriverFailure:
            raise _unavailable() from None
        finally:
            await driver_pool.release(driver)

    def _compile(self, dialect: Any) -> _Compiled:
        if self._compiled is None:
            self._compiled = _Compiled(self.statement.compile(dialect=dialect))
        return self._compiled

    async def _run(self, driver: Any, dialect: Any, params: dict[str, Any]) -> Sequence[Row]:
        compiled = self._compile(dialect)
        sql, args = compiled.sql, compiled.args(params)
        try:
            records = await driver.fetch(sql, *args)
        except asyncpg.PostgresError as exc:
            if (exc.sqlstate or "").startswith("22"):
                # A value the database refuses (a NUL character, a number out of range).
                raise Unprocessable(f"A value was refused by the database: {exc}") from None
            if isinstance(exc, asyncpg.PostgresConnectionError):
                raise _DriverFailure from exc
            raise
        except _CONNECTION_ERRORS as exc:
            raise _DriverFailure from exc
        return cast(Sequence[Row], records)


class PooledConnection:
    """A pooled asyncpg connection checked out by `pooled`."""

    def __init__(self, driver: Any, dialect: Any) -> None:
        self.driver = driver
        self.dialect = dialect

    async def run(self, query: DriverQuery, **params: Any) -> Sequence[Row]:
        """Run a DriverQuery on this connection; the RETURNING or SELECT rows."""
        return await query._run(self.driver, self.dialect, params)


@asynccontextmanager
async def pooled(
    engine: AsyncEngine, *, transaction: bool = False
) -> AsyncIterator[PooledConnection]:
    """A pooled connection, straight on the driver (PostgreSQL only).

    From the engine's driver pool (`attach_driver_pool`) if it has one, else from its
    SQLAlchemy pool. With `transaction=True` the block's statements run in one transaction,
    committed when it ends and rolled back if it raises. A broken connection is dropped, and
    the caller gets a 503.
    """
    driver_pool = _driver_pools.get(engine.sync_engine)
    if driver_pool is not None:
        driver = await driver_pool.acquire()
        try:
            async with _maybe_transaction(driver, transaction):
                yield PooledConnection(driver, engine.dialect)
        except _DriverFailure:
            # On release asyncpg replaces a closed connection and closes one it cannot reset.
            raise _unavailable() from None
        finally:
            await driver_pool.release(driver)
        return
    raw = await engine.raw_connection()
    try:
        async with _maybe_transaction(raw.driver_connection, transaction):
            yield PooledConnection(raw.driver_connection, engine.dialect)
    except _DriverFailure:
        # A broken connection must not go back into the pool.
        await greenlet_spawn(raw.invalidate)
        raise _unavailable() from None
    finally:
        # Returning it to the pool is synchronous SQLAlchemy code that may await.
        await greenlet_spawn(raw.close)


@asynccontextmanager
async def _maybe_transaction(driver: Any, transaction: bool) -> AsyncIterator[None]:
    if not transaction:
        yield
        return
    try:
        async with driver.transaction():
            yield
    except _CONNECTION_ERRORS as exc:
        raise _DriverFailure from exc


def _unavailable() -> ServiceUnavailable:
    return ServiceUnavailable("The database is unavailable; retry shortly")


class _DriverPool:
    """An asyncpg pool, and how many of its connections are out."""

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float) -> None:
        self.pool = pool
        self.size = pool.get_max_size()
        self.acquire_timeout = acquire_timeout
        self.out = 0

    async def acquire(self) -> Any:
        """A connection, or 503 if none frees up (or none can be opened) in time."""
        self.out += 1
        try:
            if self.out <= self.size:
                # One is free: nothing to wait for (opening one has its own connect timeout),
                # so no timer is armed and cancelled on every request.
                return await self.pool.acquire()
            # asyncio.timeout, not acquire(timeout=...), which runs in a task of its own.
            async with asyncio.timeout(self.acquire_timeout):
                return await self.pool.acquire()
        except (*_CONNECTION_ERRORS, asyncpg.PostgresError):
            self.out -= 1
            raise _unavailable() from None
        except BaseException:
            self.out -= 1
            raise

    async def release(self, driver: Any) -> None:
        """Give a connection back (asyncpg replaces one that broke)."""
        try:
            await self.pool.release(driver)
        finally:
            self.out -= 1


_driver_pools: weakref.WeakKeyDictionary[Engine, _DriverPool] = weakref.WeakKeyDictionary()


async def attach_driver_pool(engine: AsyncEngine, settings: Settings) -> None:
    """Give a PostgreSQL engine a pool of bare asyncpg connections for its DriverQueries.

    A SQLAlchemy pool checkout costs ~20 µs of CPU (a fairy object, a weakref finalizer, two
    greenlet hops); asyncpg's a few. Connections open on demand, up to DB_POOL_SIZE, with
    the engine's connect settings. A returned connection is not reset beyond asyncpg's own
    rollback of an open transaction: these statements change no session state. The server
    attaches one in its lifespan; `detach_driver_pool` closes it.
    """
    if engine.dialect.name != "postgresql":
        return
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    pool = await asyncpg.create_pool(
        url,
        min_size=0,
        max_size=settings.db_pool_size,
        reset=_keep_session,
        **pg_connect_args(settings),
    )
    _driver_pools[engine.sync_engine] = _DriverPool(pool, settings.db_timeout_seconds)


async def detach_driver_pool(engine: AsyncEngine) -> None:
    """Close the engine's driver pool, if it has one."""
    driver_pool = _driver_pools.pop(engine.sync_engine, None)
    if driver_pool is not None:
        await driver_pool.pool.close()


async def _keep_session(_connection: Any) -> None:
    """asyncpg's reset hook: nothing beyond its own rollback of an open transaction."""


class _Compiled:
    """SQL text, positional parameter names, literal defaults and bind processors."""

    def __init__(self, compiled: Any) -> None:
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.defaults: dict[str, Any] = dict(compiled.params)
        # The same conversions SQLAlchemy applies (JSON to text, timestamps to UTC, ...).
        self.processors: dict[str, Any] = dict(compiled._bind_processors)

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """Positional arguments for the driver, in the statement's order."""
        out = []
        for name in self.names:
            value = params[name] if name in params else self.defaults[name]
            processor = self.processors.get(name)
            out.append(processor(value) if processor is not None and value is not None else value)
        return out


class _DriverFailure(Exception):
    """The connection broke under a driver-level query."""


_CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
)
