"""Full-stack fixtures: a fresh PostgreSQL database per module, unique Redis prefixes,
private Redis servers that tests may stop, and real `taskhub worker` processes.

Isolation: each module gets its own database (dropped afterwards); tables are emptied
after every test, and every test uses its own Redis key prefix (deleted afterwards).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from taskhub.config import Settings
from taskhub.main import create_app
from taskhub.migrate import upgrade
from taskhub.models import Order, OrderStatus
from tests.conftest import (
    clean_tables,
    create_pg_database,
    drop_pg_database,
    make_settings,
    pg_url,
    service_missing,
)
from tests.processes import TaskhubProcess, free_port, process_env


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float, what: str, every: float = 0.05
) -> None:
    """Poll an async predicate until it holds; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(every)


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
    managers: list[LifespanManager] = []

    async def start(settings: Settings) -> FastAPI:
        app = create_app(settings)
        manager = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)
        await manager.__aenter__()
        managers.append(manager)
        return app

    yield start
    for manager in reversed(managers):
        await manager.__aexit__(None, None, None)


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


class PrivateRedis:
    """A throwaway redis-server that a test may stop and start (never the shared one)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._workdir = workdir
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self._proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("private redis-server did not start")
            time.sleep(0.02)

    def kill(self) -> None:
        """Stop the server abruptly."""
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(5)
            self._proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A private Redis on a free port, started; killed at the end."""
    if not _has_redis_server():
        service_missing("redis-server (binary)", "not on PATH")
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.kill()


def _has_redis_server() -> bool:
    return any((Path(p) / "redis-server").exists() for p in os.environ["PATH"].split(os.pathsep))


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


async def assert_stock_invariant(engine: AsyncEngine) -> None:
    """stock == sum(ledger) and stock >= 0 for every product; held reservations match."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    """
                    SELECT p.id, p.stock, COALESCE(SUM(m.delta), 0)
                    FROM products p LEFT JOIN stock_movements m ON m.product_id = p.id
                    GROUP BY p.id, p.stock
                    """
                )
            )
        ).all()
        assert rows, "no products"
        for product_id, stock, ledger in rows:
            assert stock == ledger, f"product {product_id}: stock {stock} != ledger {ledger}"
            assert stock >= 0, f"product {product_id}: negative stock {stock}"
        # Every order's ledger matches its reservations: reserve rows = -(all reservations),
        # release rows = +(released reservations); nothing counted twice.
        bad = (
            await conn.execute(
                text(
                    """
                    SELECT r.order_id, r.product_id, r.quantity, r.state,
                      COALESCE((SELECT SUM(-m.delta) FROM stock_movements m
                        WHERE m.order_id = r.order_id AND m.product_id = r.product_id
                          AND m.reason = 'reserve'), 0) AS reserved,
                      COALESCE((SELECT SUM(m.delta) FROM stock_movements m
                        WHERE m.order_id = r.order_id AND m.product_id = r.product_id
                          AND m.reason = 'release'), 0) AS released
                    FROM reservations r
                    """
                )
            )
        ).all()
        for order_id, product_id, quantity, state, reserved, released in bad:
            assert reserved == quantity, f"order {order_id}/{product_id}: reserved {reserved}"
            expected_release = quantity if state == "released" else 0
            assert released == expected_release, (
                f"order {order_id}/{product_id} ({state}): released {released}"
            )
        # Ledger rows for orders without a reservation would be a leak.
        orphans = await conn.scalar(
            text(
                """
                SELECT count(*) FROM stock_movements m
                WHERE m.order_id IS NOT NULL AND NOT EXISTS (
                  SELECT 1 FROM reservations r
                  WHERE r.order_id = m.order_id AND r.product_id = m.product_id)
                """
            )
        )
        assert orphans == 0, f"{orphans} ledger rows without a reservation"
        # Order states agree with reservation states.
        mismatched = await conn.scalar(
            text(
                """
                SELECT count(*) FROM orders o
                WHERE (o.status IN ('RESERVED', 'CONFIRMED') AND EXISTS (
                         SELECT 1 FROM reservations r WHERE r.order_id = o.id
                           AND r.state <> 'held'))
                   OR (o.status IN ('RESERVED', 'CONFIRMED') AND NOT EXISTS (
                         SELECT 1 FROM reservations r WHERE r.order_id = o.id))
                   OR (o.status IN ('PENDING', 'FAILED') AND EXISTS (
                         SELECT 1 FROM reservations r WHERE r.order_id = o.id))
                   OR (o.status = 'PAID' AND EXISTS (
                         SELECT 1 FROM reservations r WHERE r.order_id = o.id
                           AND r.state <> 'consumed'))
                   OR (o.status = 'CANCELLED' AND EXISTS (
                         SELECT 1 FROM reservations r WHERE r.order_id = o.id
                           AND r.state <> 'released'))
                """
            )
        )
        assert mismatched == 0, f"{mismatched} orders disagree with their reservations"
