"""The server's pool of bare asyncpg connections for the hot driver paths (taskhub.driver)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from taskhub.config import Settings
from taskhub.db import PoolSizes, pool_sizes
from taskhub.driver import driver_pool_of
from taskhub.main import create_app
from tests.conftest import client_for, make_settings
from tests.factories import make_user


@pytest.mark.parametrize("shape", ["postgres"], indirect=True)
async def test_the_driver_pool_serves_hot_reads_within_its_size_and_closes_with_the_app(
    settings_factory: Callable[..., Settings],
) -> None:
    # Four connections in all: three for the driver pool, one for ORM sessions.
    app = create_app(settings_factory(db_pool_size=4))
    async with LifespanManager(app):
        engine = app.state.engine
        driver_pool = driver_pool_of(engine)
        assert driver_pool is not None
        async with client_for(app) as client:
            user = await make_user(app, client)
            for _ in range(20):
                r = await client.get("/api/v1/users/me", headers=user.headers)
                assert r.status_code == 200
            # The reads went through it, opening connections only on demand, at most 3.
            assert 1 <= driver_pool.pool.get_size() <= 3
            # More at once than it holds: the rest wait their turn, and every one is returned.
            many = await asyncio.gather(
                *(client.get("/api/v1/users/me", headers=user.headers) for _ in range(12))
            )
            assert {r.status_code for r in many} == {200}
            assert driver_pool.pool.get_size() <= 3
            assert driver_pool.out == 0
            async with engine.connect() as connection:
                own = await connection.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE application_name = 'taskhub' AND datname = current_database()"
                    )
                )
            # One budget: both pools together never hold more than DB_POOL_SIZE.
            assert own is not None and driver_pool.pool.get_size() <= own <= 4
    assert driver_pool_of(engine) is None
    assert driver_pool.pool.is_closing()


async def test_sqlite_has_no_driver_pool(settings_factory: Callable[..., Settings]) -> None:
    app = create_app(settings_factory())
    async with LifespanManager(app):
        if app.state.engine.dialect.name == "sqlite":
            assert driver_pool_of(app.state.engine) is None
        else:
            assert driver_pool_of(app.state.engine) is not None


@pytest.mark.parametrize(("total", "driver", "sessions"), [(2, 1, 1), (4, 3, 1), (20, 15, 5)])
def test_one_connection_budget_is_split_between_the_pools(
    total: int, driver: int, sessions: int
) -> None:
    settings = make_settings(db_pool_size=total)
    assert pool_sizes(settings, driver_pool=True) == PoolSizes(driver=driver, sqlalchemy=sessions)
    # A process without a driver pool (a worker, SQLite) gives all of it to its sessions.
    assert pool_sizes(settings, driver_pool=False) == PoolSizes(driver=0, sqlalchemy=total)
