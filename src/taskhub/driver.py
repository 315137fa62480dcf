"""SQL statements, reads and writes, executed straight on the database driver.

A `DriverStatement` is an ordinary SQLAlchemy Core statement, written once. On PostgreSQL it
is compiled once and executed on an asyncpg connection, so it costs what it costs in bare
asyncpg: no ORM, no per-call compilation, no extra round trips. On SQLite (the embedded
shape) the same statement runs through SQLAlchemy as usual.

- `fetch(engine, ...)` runs one statement on a pooled connection, outside any transaction
  block (a single statement is atomic on its own).
- `connection(engine, transaction=True)` lends one connection for several statements in one
  transaction, committed when the block ends and rolled back if it raises.
- `run(session, ...)` / `run_many(session, ...)` execute inside a session's transaction, on
  its connection. SQLAlchemy opens that transaction (its first statement goes through the
  session), so atomicity and commit/rollback stay the session's.

Connections: on PostgreSQL the server gives its engine a pool of bare asyncpg connections
(`attach_driver_pool`); a SQLAlchemy pool checkout costs more CPU than a small query. The
process's `DB_POOL_SIZE` is one budget shared by both pools (`pool_sizes`). Errors are
mapped by `taskhub.errors.database_error`, the one map of database errors.

Who may import this module: services, handlers, query modules and `messaging`, never a
router (tests/test_architecture.py holds the rule).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, Protocol, cast

import asyncpg
import orjson
from sqlalchemy import (
    ARRAY,
    Boolean,
    ClauseElement,
    ColumnElement,
    Engine,
    Integer,
    Select,
    String,
    bindparam,
    literal_column,
    select,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.types import TypeDecorator

from taskhub.config import Settings
from taskhub.db import pg_connect_args, pool_sizes
from taskhub.errors import ServiceUnavailable, database_error

Row = Mapping[str, Any]


class DriverStatement:
    """A Core statement (SELECT, INSERT, UPDATE, DELETE) run on the raw driver connection."""

    def __init__(self, statement: ClauseElement) -> None:
        # Typed loosely: SQLAlchemy's overloads do not cover 'any statement'.
        self.statement: Any = statement
        self._compiled: _Compiled | None = None

    async def fetch(self, engine: AsyncEngine, **params: Any) -> Sequence[Row]:
        """All rows (RETURNING rows for a write) of one statement on a pooled connection."""
        if engine.dialect.name != "postgresql":
            async with engine.connect() as sqlalchemy_connection:
                autocommit = await sqlalchemy_connection.execution_options(
                    isolation_level="AUTOCOMMIT"
                )
                return await _execute(autocommit, self.statement, params)
        driver_pool = _driver_pools.get(engine.sync_engine)
        if driver_pool is None:
            async with connection(engine) as lent:
                return await lent.run(self, **params)
        # Every authenticated request comes here: no context managers on the way.
        driver = await driver_pool.acquire()
        try:
            return await self._run(driver, engine.dialect, params)
        finally:
            await driver_pool.release(driver)

    async def fetch_one(self, engine: AsyncEngine, **params: Any) -> Row | None:
        """The first row, or None."""
        rows = await self.fetch(engine, **params)
        return rows[0] if rows else None

    async def run(self, session: AsyncSession, **params: Any) -> Sequence[Row]:
        """Run the statement inside the session's transaction; the rows it returns, if any.

        On PostgreSQL the first statement of a transaction goes through SQLAlchemy, which
        opens it; once it is open, statements go straight to the driver, on the same
        connection and in the same transaction.
        """
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            raw = await connection.get_raw_connection()
            in_tx: Any = raw.driver_connection
            if in_tx.is_in_transaction():
                try:
                    return await self._run(in_tx, connection.dialect, params)
                except ServiceUnavailable:
                    await connection.invalidate()
                    raise
        return await _execute(connection, self.statement, params)

    async def run_many(self, session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per parameter set (executemany), in the transaction."""
        if not rows:
            return
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
                try:
                    await driver.executemany(compiled.sql, [compiled.args(r) for r in rows])
                except Exception as exc:
                    raise _mapped(exc) from None
                return
        await connection.execute(self.statement, [dict(r) for r in rows])

    def _compile(self, dialect: Dialect) -> _Compiled:
        if self._compiled is None:
            self._compiled = _Compiled(self.statement.compile(dialect=dialect), dialect)
        return self._compiled

    async def _run(self, driver: Any, dialect: Dialect, params: Mapping[str, Any]) -> Sequence[Row]:
        compiled = self._compile(dialect)
        try:
            records = await driver.fetch(compiled.sql, *compiled.args(params))
        except Exception as exc:
            raise _mapped(exc) from None
        return cast(Sequence[Row], records)


def _mapped(exc: Exception) -> Exception:
    """The driver's exception as the app's problem (`errors.database_error`), if it is one."""
    return database_error(exc) or exc


async def _execute(
    connection: AsyncConnection, statement: Any, params: Mapping[str, Any]
) -> Sequence[Row]:
    result = await connection.execute(statement, dict(params))
    if not result.returns_rows:
        return []
    return cast(Sequence[Row], result.mappings().all())


class Executor(Protocol):
    """Where a service's statements run: a lent connection, or a session's transaction."""

    @property
    def dialect(self) -> str:
        """The database's dialect name: "postgresql" or "sqlite"."""
        ...

    async def run(self, statement: DriverStatement, **params: Any) -> Sequence[Row]:
        """Run one statement; the rows it returns, if any."""
        ...

    async def run_many(self, statement: DriverStatement, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run one statement once per parameter set."""
        ...

    def events_written(self) -> None:
        """Note that outbox events were written: announce them after the commit."""
        ...


class DriverConnection:
    """A connection lent by `connection`: the driver's on PostgreSQL, SQLAlchemy's on SQLite."""

    def __init__(self, driver: Any, dialect: Dialect, sqlalchemy: AsyncConnection | None) -> None:
        self._driver = driver
        self._dialect = dialect
        self._sqlalchemy = sqlalchemy
        self.wrote_events = False

    @property
    def dialect(self) -> str:
        """The database's dialect name."""
        return str(self._dialect.name)

    async def run(self, statement: DriverStatement, **params: Any) -> Sequence[Row]:
        """Run a statement on this connection; the rows it returns, if any."""
        if self._sqlalchemy is not None:
            return await _execute(self._sqlalchemy, statement.statement, params)
        return await statement._run(self._driver, self._dialect, params)

    async def run_many(self, statement: DriverStatement, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement once per parameter set (asyncpg pipelines them)."""
        if not rows:
            return
        if self._sqlalchemy is not None:
            await self._sqlalchemy.execute(statement.statement, [dict(r) for r in rows])
            return
        if len(rows) == 1:
            await statement._run(self._driver, self._dialect, rows[0])
            return
        compiled = statement._compile(self._dialect)
        try:
            await self._driver.executemany(compiled.sql, [compiled.args(r) for r in rows])
        except Exception as exc:
            raise _mapped(exc) from None

    def events_written(self) -> None:
        """Note that outbox events were written (the lender announces them after commit)."""
        self.wrote_events = True


class SessionExecutor:
    """A session's transaction as an `Executor` (statements go to the driver on PostgreSQL)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    @property
    def dialect(self) -> str:
        """The database's dialect name."""
        bind = self.session.bind
        return str(bind.dialect.name) if bind is not None else "sqlite"

    async def run(self, statement: DriverStatement, **params: Any) -> Sequence[Row]:
        """Run a statement in the session's transaction."""
        return await statement.run(self.session, **params)

    async def run_many(self, statement: DriverStatement, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run a statement once per parameter set, in the session's transaction."""
        await statement.run_many(self.session, rows)

    def events_written(self) -> None:
        """Note that outbox events were written (the session's owner announces them)."""
        self.session.info["outbox_written"] = True


def in_session(session: AsyncSession) -> SessionExecutor:
    """The session's transaction as an `Executor`."""
    return SessionExecutor(session)


class _ListParam(TypeDecorator[list[Any]]):
    """A list bound as one parameter: an array on PostgreSQL, a JSON array (read with
    json_each) on SQLite, so a statement compiles once whatever the list's length."""

    impl = String()
    cache_ok = True
    item: Any = Integer()

    def load_dialect_impl(self, dialect: Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(self.item))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: list[Any] | None, dialect: Dialect) -> Any:
        if value is None or dialect.name == "postgresql":
            return value
        return orjson.dumps(list(value)).decode()


class IntegerList(_ListParam):
    """A list of integers as one parameter (`in_list`)."""

    cache_ok = True
    item = Integer()


class TextList(_ListParam):
    """A list of strings as one parameter."""

    cache_ok = True
    item = String()


class _InList(ColumnElement[bool]):
    """`column IN (the integers of one list parameter)`, compiled per dialect."""

    inherit_cache = True
    type = Boolean()

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.parameter = bindparam(name, type_=IntegerList())


@compiles(_InList, "postgresql")
def _in_list_postgresql(element: _InList, compiler: Any, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"{column} = ANY({compiler.process(element.parameter, **kw)})"


@compiles(_InList)
def _in_list_default(element: _InList, compiler: Any, **kw: Any) -> str:
    # Both parts are SQLAlchemy's own renderings (a column, a bound parameter's marker).
    column = compiler.process(element.column, **kw)
    parameter = compiler.process(element.parameter, **kw)
    return f"{column} IN (SELECT value FROM json_each({parameter}))"  # noqa: S608


def claimed_once(query: Select[Any], name: str) -> Select[Any]:
    """The ids `query` selects (`… ORDER BY … LIMIT n FOR UPDATE SKIP LOCKED`), for an
    `UPDATE … WHERE id IN (…)` that claims them, evaluated exactly once.

    As a plain subquery, PostgreSQL may make it the inner side of a semi join and run it
    again for every row of the outer scan; each run locks the next rows whose new versions
    the UPDATE has not yet made ineligible, so LIMIT n bounds nothing and every eligible row
    is claimed. A MATERIALIZED common table expression runs once.
    """
    claimed = query.cte(name).prefix_with("MATERIALIZED")
    return select(claimed.c[0])


def in_list(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """`column IN :name` for a list of integers bound as ONE parameter, so that the statement
    compiles once whatever the list's length (an expanding IN would not)."""
    return _InList(column, name)


@asynccontextmanager
async def connection(
    engine: AsyncEngine, *, transaction: bool = False
) -> AsyncIterator[DriverConnection]:
    """A connection for several statements, in one transaction with `transaction=True`.

    On PostgreSQL from the engine's driver pool if it has one, else from its SQLAlchemy pool;
    committed when the block ends, rolled back if it raises. A broken connection is dropped,
    and the caller gets a 503.
    """
    if engine.dialect.name != "postgresql":
        if transaction:
            async with engine.begin() as conn:
                yield DriverConnection(None, engine.dialect, conn)
        else:
            async with engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                yield DriverConnection(None, engine.dialect, autocommit)
        return
    driver_pool = _driver_pools.get(engine.sync_engine)
    if driver_pool is not None:
        driver = await driver_pool.acquire()
        try:
            async with _maybe_transaction(driver, transaction):
                yield DriverConnection(driver, engine.dialect, None)
        finally:
            # On release asyncpg replaces a closed connection and closes one it cannot reset.
            await driver_pool.release(driver)
        return
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        try:
            async with _maybe_transaction(raw.driver_connection, transaction):
                yield DriverConnection(raw.driver_connection, engine.dialect, None)
        except ServiceUnavailable:
            await conn.invalidate()  # a broken connection must not go back into the pool
            raise


@asynccontextmanager
async def _maybe_transaction(driver: Any, transaction: bool) -> AsyncIterator[None]:
    if not transaction:
        yield
        return
    try:
        async with driver.transaction():
            yield
    except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError) as exc:
        raise _mapped(exc) from None


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
        except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresError) as exc:
            self.out -= 1
            raise _mapped(exc) from None
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
    """Give a PostgreSQL engine a pool of bare asyncpg connections for its statements.

    Connections open on demand, up to the driver's share of DB_POOL_SIZE (`pool_sizes`),
    with the engine's connect settings (behind PgBouncer: no statement cache, see
    `pg_connect_args`). A returned connection is not reset beyond asyncpg's own rollback of
    an open transaction: these statements change no session state, which also makes them
    safe on PgBouncer's transaction pooling. `detach_driver_pool` closes it.
    """
    if engine.dialect.name != "postgresql":
        return
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    pool = await asyncpg.create_pool(
        url,
        min_size=0,
        max_size=pool_sizes(settings, driver_pool=True).driver,
        reset=_keep_session,
        **pg_connect_args(settings),
    )
    _driver_pools[engine.sync_engine] = _DriverPool(pool, settings.db_timeout_seconds)


async def detach_driver_pool(engine: AsyncEngine) -> None:
    """Close the engine's driver pool, if it has one."""
    driver_pool = _driver_pools.pop(engine.sync_engine, None)
    if driver_pool is not None:
        await driver_pool.pool.close()


def driver_pool_of(engine: AsyncEngine) -> _DriverPool | None:
    """The engine's driver pool, if it has one (for tests and metrics)."""
    return _driver_pools.get(engine.sync_engine)


async def _keep_session(_connection: Any) -> None:
    """asyncpg's reset hook: nothing beyond its own rollback of an open transaction."""


class _Compiled:
    """SQL text, positional parameter names, literal defaults and bind processors.

    Built from SQLAlchemy's public compiled-statement API: `positiontup`, `params`, `binds`
    and each bound type's `bind_processor`, so the driver gets the values SQLAlchemy would
    send (JSON as text, timestamps in UTC, ...).
    """

    def __init__(self, compiled: Any, dialect: Dialect) -> None:
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.defaults: dict[str, Any] = dict(compiled.params)
        self.processors: dict[str, Any] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.processors[name] = processor

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        """Positional arguments for the driver, in the statement's order."""
        out = []
        for name in self.names:
            value = params[name] if name in params else self.defaults[name]
            processor = self.processors.get(name)
            out.append(processor(value) if processor is not None and value is not None else value)
        return out


class Database:
    """The engine with what a service needs to run statements: lent transactions that
    announce the events they wrote once committed, and single hot statements."""

    def __init__(self, engine: AsyncEngine, *, on_events: Callable[[], None]) -> None:
        self.engine = engine
        self._on_events = on_events

    @property
    def dialect(self) -> str:
        """The database's dialect name."""
        return str(self.engine.dialect.name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[DriverConnection]:
        """A lent connection whose statements commit together; the events they wrote are
        announced after the commit."""
        async with connection(self.engine, transaction=True) as lent:
            yield lent
        if lent.wrote_events:
            self._on_events()

    @property
    def pooled(self) -> Executor:
        """An executor that runs each statement on its own pooled connection, outside any
        transaction block: for a read, or a write that is one statement (whose events are
        announced as soon as it returns: it has committed)."""
        return _Pooled(self.engine, self._on_events)


class _Pooled:
    """`Database.pooled`: each statement alone on a pooled connection (the hot path)."""

    def __init__(self, engine: AsyncEngine, on_events: Callable[[], None]) -> None:
        self._engine = engine
        self._on_events = on_events

    @property
    def dialect(self) -> str:
        """The database's dialect name."""
        return str(self._engine.dialect.name)

    async def run(self, statement: DriverStatement, **params: Any) -> Sequence[Row]:
        """Run one statement on a pooled connection."""
        return await statement.fetch(self._engine, **params)

    async def run_many(self, statement: DriverStatement, rows: Sequence[Mapping[str, Any]]) -> None:
        """Not for several statements: they would not commit together."""
        del statement, rows
        raise TypeError("Database.pooled runs single statements; use Database.transaction()")

    def events_written(self) -> None:
        """The statement that wrote events has committed: announce them."""
        self._on_events()


def in_constants(column: ColumnElement[Any], values: Sequence[str]) -> ColumnElement[bool]:
    """`column IN ('a', 'b', …)` with the values written into the SQL: a fixed set of codes
    (statuses), so the statement still compiles once."""
    for value in values:
        if not value.replace("_", "").isalnum():
            raise ValueError(f"not a plain code: {value!r}")
    return column.in_([literal_column(f"'{value}'") for value in values])
