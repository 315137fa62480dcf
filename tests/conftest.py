"""Test fixtures: a fresh database per run for each shape, built by the migrations.

Isolation: every test starts from empty tables. After each test the tables it may have
written are emptied (TRUNCATE on PostgreSQL, DELETE on SQLite). Rolled-back transactions
would not do here, because the concurrency tests commit from many connections and processes.

Shapes: tests that take the `client` fixture run twice, against SQLite (embedded) and
PostgreSQL. The commerce tests run a third time, against PostgreSQL through a PgBouncer in
transaction mode that the suite starts itself (`pgbouncer`, DB_PGBOUNCER=true). When
PostgreSQL, Redis or pgbouncer is absent their tests are skipped and the summary says so;
with TASKHUB_REQUIRE_SERVICES=1 (CI) an absent service is a failure instead.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from taskhub.config import Settings
from taskhub.main import create_app
from taskhub.migrate import upgrade
from tests.pgbouncer import PgBouncer
from tests.processes import SECRET, PrivateRedis

PG_ADMIN_DSN = os.environ.get("TASKHUB_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("TASKHUB_TEST_REDIS", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("TASKHUB_REQUIRE_SERVICES") == "1"
TABLES = [
    "webhook_deliveries",
    "webhook_endpoints",
    "stream_tickets",
    "revoked_tokens",
    "task_activity",
    "tasks",
    "project_members",
    "projects",
    "stock_movements",
    "reservations",
    "order_items",
    "orders",
    "products",
    "idempotency_keys",
    "processed_events",
    "outbox",
    "users",
]
_skipped_services: set[str] = set()


def service_missing(name: str, why: str) -> None:
    """Skip for an absent service, or fail when TASKHUB_REQUIRE_SERVICES=1."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is required (TASKHUB_REQUIRE_SERVICES=1) but unavailable: {why}")
    _skipped_services.add(name)
    pytest.skip(f"{name} unavailable: {why}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Announce skipped full-stack tests loudly."""
    if _skipped_services:
        terminalreporter.write_line(
            "SKIPPED full-stack tests: no "
            + ", ".join(sorted(_skipped_services))
            + " (set TASKHUB_REQUIRE_SERVICES=1 to make this a failure)",
            yellow=True,
            bold=True,
        )


async def _pg_available() -> str | None:
    try:
        conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return str(exc)
    await conn.close()
    return None


@pytest.fixture(scope="session")
async def pg_server() -> str:
    """The PostgreSQL admin DSN, or a skip (a failure in CI)."""
    problem = await _pg_available()
    if problem:
        service_missing("PostgreSQL", problem)
    return PG_ADMIN_DSN


async def create_pg_database(admin_dsn: str) -> str:
    """Create a uniquely named database and return its name."""
    name = f"taskhub_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_pg_database(admin_dsn: str, name: str) -> None:
    """Drop a test database, disconnecting whoever is still on it."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def pg_url(admin_dsn: str, name: str) -> str:
    """The SQLAlchemy URL of a database on the admin DSN's server."""
    base = admin_dsn.rsplit("/", 1)[0]
    return base.replace("postgresql://", "postgresql+asyncpg://", 1) + "/" + name


@pytest.fixture(scope="session")
async def pg_database_url(pg_server: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this run, migrated to head."""
    name = await create_pg_database(pg_server)
    url = pg_url(pg_server, name)
    await upgrade(make_settings(database_url=url))
    yield url
    await drop_pg_database(pg_server, name)


def start_pgbouncer(admin_dsn: str, **options: Any) -> PgBouncer:
    """Start a pgbouncer (tests/pgbouncer.py) in front of the test PostgreSQL; a skip, or a
    failure under TASKHUB_REQUIRE_SERVICES=1, when Debian's pgbouncer is not installed."""
    try:
        bouncer = PgBouncer(admin_dsn, **options)
    except FileNotFoundError as exc:
        service_missing("pgbouncer", str(exc))
    bouncer.start()
    return bouncer


@pytest.fixture(scope="session")
def pgbouncer(pg_server: str) -> Iterator[PgBouncer]:
    """A pgbouncer of this run, transaction mode, in front of the test PostgreSQL."""
    bouncer = start_pgbouncer(pg_server)
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="session")
async def pgbouncer_database_url(pg_server: str, pgbouncer: PgBouncer) -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this run, migrated through the pgbouncer (as
    `taskhub migrate` would be behind one); its URL through the pgbouncer."""
    name = await create_pg_database(pg_server)
    url = pgbouncer.url_through(pg_url(pg_server, name))
    await upgrade(make_settings(database_url=url, db_pgbouncer=True))
    yield url
    await drop_pg_database(pg_server, name)


@pytest.fixture(scope="session")
async def sqlite_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh SQLite file for this run, migrated to head."""
    path: Path = tmp_path_factory.mktemp("db") / "taskhub.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade(make_settings(database_url=url))
    return url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def shape(request: pytest.FixtureRequest) -> str:
    """The database shape a test runs against."""
    return str(request.param)


@pytest.fixture
def database_url(shape: str, request: pytest.FixtureRequest) -> str:
    """The migrated database of the current shape."""
    if shape == "sqlite":
        return str(request.getfixturevalue("sqlite_database_url"))
    if shape == "pgbouncer":
        return str(request.getfixturevalue("pgbouncer_database_url"))
    return str(request.getfixturevalue("pg_database_url"))


def make_settings(**overrides: Any) -> Settings:
    """Test settings: fast bcrypt, a fixed secret, generous limits."""
    values: dict[str, Any] = {
        "environment": "test",
        "secret_key": SECRET,
        "bcrypt_rounds": 4,
        "redis_url": None,
        "login_max_failures_per_client": 10_000,
        "relay_poll_seconds": 0.05,
        # Concurrency tests queue hundreds of requests for the pool on a busy 2-core machine.
        "db_timeout_seconds": 30,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


async def clean_tables(url: str, *, pgbouncer: bool = False) -> None:
    """Empty every table (see the module docstring); `pgbouncer`: the URL leads through one."""
    if "postgresql" not in url:
        connect_args: dict[str, Any] = {"timeout": 30}
    elif pgbouncer:
        connect_args = {"statement_cache_size": 0, "prepared_statement_cache_size": 0}
    else:
        connect_args = {}
    engine = create_async_engine(url, connect_args=connect_args)
    try:
        async with engine.begin() as conn:
            if url.startswith("postgresql"):
                await conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
            else:
                for table in TABLES:
                    await conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608
                # Ids start again at 1, as RESTART IDENTITY makes them on PostgreSQL.
                await conn.execute(text("DELETE FROM sqlite_sequence"))
    finally:
        await engine.dispose()


@pytest.fixture
async def settings_factory(database_url: str, shape: str) -> AsyncIterator[Callable[..., Settings]]:
    """Build settings for this test's database; the tables are emptied afterwards."""
    base = {"database_url": database_url, "db_pgbouncer": shape == "pgbouncer"}
    yield lambda **overrides: make_settings(**{**base, **overrides})
    await clean_tables(database_url, pgbouncer=shape == "pgbouncer")


@pytest.fixture
def settings(settings_factory: Callable[..., Settings]) -> Settings:
    """Default test settings for the current shape."""
    return settings_factory()


@pytest.fixture
async def app_factory(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[Callable[[Settings], Any]]:
    """Start apps (with their lifespan) for custom settings; all are stopped at the end.

    Depends on settings_factory so that the apps stop before the tables are emptied.
    """
    async with started_apps() as start:
        yield start


@contextlib.asynccontextmanager
async def started_apps() -> AsyncIterator[Callable[[Settings], Any]]:
    """A `start(settings)` that builds and starts apps; every one is stopped on exit."""
    managers: list[LifespanManager] = []

    async def start(settings: Settings) -> FastAPI:
        app = create_app(settings)
        manager = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)
        await manager.__aenter__()
        managers.append(manager)
        return app

    try:
        yield start
    finally:
        for manager in reversed(managers):
            await manager.__aexit__(None, None, None)


@pytest.fixture
async def app(app_factory: Callable[[Settings], Any], settings: Settings) -> FastAPI:
    """The app for the current shape, started."""
    started: FastAPI = await app_factory(settings)
    return started


def client_for(app: FastAPI) -> httpx.AsyncClient:
    """An HTTP client speaking to the app in-process."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=30
    )


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A real HTTP client over ASGI."""
    async with client_for(app) as c:
        yield c


@pytest.fixture(scope="session")
async def redis_server() -> str:
    """The Redis URL, or a skip (a failure in CI)."""
    client = aioredis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as exc:
        service_missing("Redis", str(exc))
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture
async def redis_prefix(redis_server: str) -> AsyncIterator[str]:
    """A unique key prefix; every key under it is deleted afterwards."""
    prefix = f"taskhub-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = aioredis.Redis.from_url(redis_server)
    try:
        keys = [k async for k in client.scan_iter(match=f"*{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A redis-server of this test's own on a free port, which it may kill and restart
    (never the shared one); killed at the end."""
    if shutil.which("redis-server") is None:
        service_missing("redis-server (binary)", "not on PATH")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()
