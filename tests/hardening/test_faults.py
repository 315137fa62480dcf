"""Dependencies going down under a running API (OWASP API4/API8: fail safely, recover).

PostgreSQL: the app reaches the shared server through a TCP proxy owned by the test, which
"cuts" it (listener closed, live connections reset) and restores it; the server itself is
never touched. Redis: a private redis-server on a free port, started and killed by the test.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from taskhub.config import Settings
from taskhub.driver import driver_pool_of
from taskhub.main import create_app
from taskhub.migrate import upgrade
from tests.commerce.conftest import make_product, place_order, wait_settled
from tests.conftest import (
    client_for,
    create_pg_database,
    drop_pg_database,
    make_settings,
    pg_url,
)
from tests.factories import make_user
from tests.hardening.conftest import assert_problem
from tests.hardening.tcp_proxy import TcpProxy
from tests.polling import eventually
from tests.processes import PrivateRedis

logger = logging.getLogger(__name__)
LOGIN = "/api/v1/auth/login/access-token"


@dataclass
class ProxiedApp:
    """An app whose database connections all go through `proxy`."""

    app: FastAPI
    proxy: TcpProxy


@pytest.fixture
async def start_proxied_app(pg_server: str) -> AsyncIterator[Callable[..., Awaitable[ProxiedApp]]]:
    """Start an app on a fresh database behind a cuttable proxy; everything is torn down."""
    name = await create_pg_database(pg_server)
    direct = pg_url(pg_server, name)
    await upgrade(make_settings(database_url=direct))
    target = urlsplit(pg_server)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    managers: list[LifespanManager] = []

    async def start(**overrides: object) -> ProxiedApp:
        through_proxy = direct.replace(f":{target.port or 5432}/", f":{proxy.port}/", 1)
        assert through_proxy != direct
        values: dict[str, object] = {"db_timeout_seconds": 1, **overrides}
        app = create_app(make_settings(database_url=through_proxy, **values))
        manager = LifespanManager(app, startup_timeout=30, shutdown_timeout=30)
        await manager.__aenter__()
        managers.append(manager)
        return ProxiedApp(app=app, proxy=proxy)

    try:
        yield start
    finally:
        if proxy._server is None:
            await proxy.restore()
        for manager in reversed(managers):
            await manager.__aexit__(None, None, None)
        await proxy.cut()
        await drop_pg_database(pg_server, name)


async def timed(call: Awaitable[httpx.Response]) -> tuple[httpx.Response, float]:
    """A response and the seconds it took."""
    started = time.monotonic()
    response = await call
    return response, time.monotonic() - started


def assert_unavailable(response: httpx.Response) -> None:
    """503 problem+json with Retry-After."""
    assert_problem(response, 503)
    assert int(response.headers["retry-after"]) >= 1


@pytest.mark.pg
async def test_postgres_down_is_503_and_the_app_recovers(
    start_proxied_app: Callable[..., Awaitable[ProxiedApp]],
) -> None:
    target = await start_proxied_app()
    app, proxy = target.app, target.proxy
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        pid = await make_product(client, admin, stock=100)
        assert (await client.get("/ready")).status_code == 200

        await proxy.cut()
        calls: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
            "public read": lambda: client.get("/api/v2/products"),
            "authenticated read": lambda: client.get("/api/v1/users/me", headers=admin.headers),
            "order": lambda: place_order(client, admin, [(pid, 1)]),
            "login": lambda: client.post(
                LOGIN, data={"username": admin.email, "password": admin.password}
            ),
        }
        for _ in range(2):  # the first round meets pooled connections, the second new ones
            for name, call in calls.items():
                response, took = await timed(call())
                assert_unavailable(response)
                assert took < 3, (name, took)
                logger.info("postgres down: %s -> %s in %.3fs", name, response.status_code, took)
        ready, took = await timed(client.get("/ready"))
        assert took < 4, took
        assert_unavailable(ready)
        assert ready.json()["checks"]["database"].startswith("unavailable")
        assert "redis" not in ready.json()["detail"]  # embedded: Redis is not a dependency
        logger.info("postgres down: /ready -> 503 in %.3fs", took)
        assert (await client.get("/health")).status_code == 200  # liveness: do not restart me

        await proxy.restore()

        async def serving() -> bool:
            return (await client.get("/api/v2/products")).status_code == 200

        took = await eventually(serving, timeout=10)
        logger.info("postgres back: serving again after %.3fs", took)
        assert (await client.get("/ready")).status_code == 200
        order = await place_order(client, admin, [(pid, 1)])
        assert order.status_code == 201, order.text
        # The embedded dispatcher lived through the outage: the order is reserved.
        statuses = await wait_settled(client, admin, [order.json()["id"]], timeout=15)
        assert set(statuses.values()) == {"RESERVED"}


@pytest.mark.pg
async def test_pool_exhaustion_and_a_connection_dropped_mid_request_are_503(
    start_proxied_app: Callable[..., Awaitable[ProxiedApp]],
) -> None:
    # Two connections in all: one for the driver pool, one for ORM sessions.
    target = await start_proxied_app(db_pool_size=2, db_max_overflow=0)
    app, proxy = target.app, target.proxy
    async with client_for(app) as client:
        assert (await client.get("/api/v2/products")).status_code == 200
        proxy.stall()  # the database stops answering; connections stay open
        stuck = asyncio.create_task(client.get("/api/v2/products"))
        await asyncio.sleep(0.3)
        assert not stuck.done()
        # The only pooled connection is taken: the next request waits db_timeout, then 503.
        response, took = await timed(client.get("/api/v2/products"))
        assert_unavailable(response)
        assert 0.5 < took < 3, took
        logger.info("pool exhausted -> %s in %.3fs", response.status_code, took)
        # Now the connection the first request is using drops mid-query.
        await proxy.cut()
        response, took = await timed(stuck)
        assert_unavailable(response)
        logger.info("dropped mid-request -> %s", response.status_code)
        await proxy.restore()

        async def serving() -> bool:
            return (await client.get("/api/v2/products")).status_code == 200

        took = await eventually(serving, timeout=10)
        logger.info("after the drop: serving again after %.3fs", took)
        r = await client.post(LOGIN, data={"username": "nobody@example.com", "password": "x" * 9})
        assert r.status_code == 401  # the pool is healthy again, not just one connection
        # Every connection taken, including the timed-out wait and the dropped one, is back.
        pool = driver_pool_of(app.state.engine)
        assert pool is not None and pool.out == 0


# --- Redis down (API side) --------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["postgres"], indirect=True)
@pytest.mark.redis
async def test_redis_down_orders_and_logins_still_work(
    app_factory: Callable[[Settings], Awaitable[FastAPI]],
    settings_factory: Callable[..., Settings],
    private_redis: PrivateRedis,
) -> None:
    settings = settings_factory(
        redis_url=private_redis.url, login_max_failures_per_account=3, db_timeout_seconds=5
    )
    app = await app_factory(settings)
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        pid = await make_product(client, admin, stock=10)
        assert (await client.get("/ready")).status_code == 200

        private_redis.kill()
        order, took = await timed(place_order(client, admin, [(pid, 1)]))
        assert order.status_code == 201, order.text  # the outbox holds the event
        assert order.json()["status"] == "PENDING"
        logger.info("redis down: order -> 201 in %.3fs", took)
        ready, took = await timed(client.get("/ready"))
        assert_unavailable(ready)
        assert ready.json()["checks"]["redis"].startswith("unavailable")
        assert ready.json()["checks"]["database"] == "ok"
        logger.info("redis down: /ready -> 503 in %.3fs", took)
        # The failed-login limiter fails open: logins work, and failures are not counted.
        for _ in range(5):
            r = await client.post(LOGIN, data={"username": admin.email, "password": "Wrong-pw-1"})
            assert r.status_code == 401
        login, took = await timed(
            client.post(LOGIN, data={"username": admin.email, "password": admin.password})
        )
        assert login.status_code == 200, login.text
        assert took < 3
        logger.info("redis down: login -> 200 in %.3fs", took)
        assert (await client.get("/api/v2/products")).status_code == 200

        private_redis.start()

        async def ready_again() -> bool:
            return (await client.get("/ready")).status_code == 200

        took = await eventually(ready_again, timeout=15, every=0.25)
        logger.info("redis back: ready after %.3fs", took)
        # The limiter counts again once Redis is back.
        for _ in range(3):
            r = await client.post(LOGIN, data={"username": admin.email, "password": "Wrong-pw-1"})
            assert r.status_code == 401
        r = await client.post(LOGIN, data={"username": admin.email, "password": admin.password})
        assert_problem(r, 429)
