"""Full-stack fixtures: a fresh PostgreSQL database per module, unique Redis prefixes,
private Redis servers that tests may stop, and real `taskhub worker` processes.

Isolation: each module gets its own database (dropped afterwards); tables are emptied
after every test, and every test uses its own Redis key prefix (deleted afterwards).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from taskhub.config import Settings
from taskhub.migrate import upgrade
from taskhub.models import Order, OrderStatus
from tests.conftest import (
    clean_tables,
    client_for,
    create_pg_database,
    drop_pg_database,
    make_settings,
    pg_url,
    started_apps,
)
from tests.factories import make_user
from tests.processes import TaskhubProcess, process_env


@pytest.fixture(scope="module")
async def fs_database_url(pg_server: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this module, migrated to head."""
    name = await create_pg_database(pg_server)
    url = pg_url(pg_server, name)
    await upgrade(make_settings(database_url=url))
    yield url
    await drop_pg_database(pg_server, name)


@pytest.fixture
async def fs_engine(fs_database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the module's database; the tables are emptied after the test."""
    engine = create_async_engine(fs_database_url)
    yield engine
    await engine.dispose()
    await clean_tables(fs_database_url)


@pytest.fixture
async def fs_app_factory(fs_engine: AsyncEngine) -> AsyncIterator[Callable[[Settings], Any]]:
    """Start apps with their lifespan; stopped before `fs_engine` empties the tables."""
    del fs_engine
    async with started_apps() as start:
        yield start


@pytest.fixture
def fs_settings(
    fs_database_url: str, redis_server: str, redis_prefix: str
) -> Callable[..., Settings]:
    """Full-stack settings for this test (its database, Redis and key prefix)."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": fs_database_url,
            "redis_url": redis_server,
            "redis_prefix": redis_prefix,
            "max_open_orders_per_user": 0,
            "event_claim_idle_ms": 2000,
        }
        values.update(overrides)
        return make_settings(**values)

    return build


@pytest.fixture
async def redis_client(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    """A client of the shared test Redis."""
    client = aioredis.Redis.from_url(redis_server)
    yield client
    await client.aclose()


@pytest.fixture
async def running() -> AsyncIterator[Callable[[Any], None]]:
    """Run relays/consumers in-process as tasks; they are stopped and awaited at the end."""
    pieces: list[tuple[Any, asyncio.Task[None]]] = []

    def start(piece: Any) -> None:
        pieces.append((piece, asyncio.create_task(piece.run())))

    yield start
    for piece, _task in pieces:
        piece.stop()
    for _piece, task in pieces:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)


WorkerProcess = TaskhubProcess  # a `taskhub worker` subprocess


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start worker processes for given settings; all are killed at the end."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, **extra_env: str) -> WorkerProcess:
        values = {
            "DATABASE_URL": settings.database_url,
            "REDIS_URL": settings.redis_url or "",
            "REDIS_PREFIX": settings.redis_prefix,
            "EVENT_CLAIM_IDLE_MS": str(settings.event_claim_idle_ms),
            "EVENT_MAX_DELIVERIES": str(settings.event_max_deliveries),
            "RELAY_POLL_SECONDS": "0.2",
            "EXPIRY_SWEEP_SECONDS": "1",
            "WORKER_CONCURRENCY": str(settings.worker_concurrency),
            "STREAM_PARTITIONS": str(settings.stream_partitions),
            "REDIS_CLUSTER": str(settings.redis_cluster).lower(),
        }
        env = process_env(**{**values, **extra_env})
        worker = WorkerProcess(
            ["worker"], env=env, log=tmp_path / f"worker-{len(started)}.log", cwd=tmp_path
        )
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.close()


async def order_status_counts(engine: AsyncEngine) -> dict[str, int]:
    """How many orders are in each status."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(Order.status, func.count()).group_by(Order.status))
        return {str(status): int(count) for status, count in rows}


async def pending_orders(engine: AsyncEngine) -> int:
    """How many orders still wait for the worker."""
    async with engine.connect() as conn:
        count = await conn.scalar(select(func.count()).where(Order.status == OrderStatus.PENDING))
        return int(count or 0)


@pytest.fixture
async def stack_factory(
    fs_settings: Callable[..., Settings],
    fs_engine: AsyncEngine,
    fs_app_factory: Callable[[Settings], Any],
) -> AsyncIterator[Callable[..., Any]]:
    """Build `Stack`s (tests.fullstack.stack); their clients are closed at the end."""
    from tests.fullstack.stack import Stack  # it uses this module's helpers

    clients: list[httpx.AsyncClient] = []

    async def build(**overrides: Any) -> Stack:
        # 200 requests at once queue for the pool on this 2-core machine: let them wait.
        settings = fs_settings(**{"db_timeout_seconds": 30, **overrides})
        app = await fs_app_factory(settings)
        client = client_for(app)
        clients.append(client)
        admin = await make_user(app, client, is_superuser=True)
        customer = await make_user(app, client)
        return Stack(settings, app, client, admin, customer, fs_engine)

    yield build
    for client in clients:
        await client.aclose()
