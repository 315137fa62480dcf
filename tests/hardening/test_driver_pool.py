"""The server's pool of bare asyncpg connections for the hot driver paths (driver_reads)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text

from taskhub.config import Settings
from taskhub.driver_reads import _driver_pools
from taskhub.main import create_app
from tests.conftest import client_for
from tests.factories import make_user


@pytest.mark.parametrize("shape", ["postgres"], indirect=True)
async def test_the_driver_pool_serves_hot_reads_within_its_size_and_closes_with_the_app(
    settings_factory: Callable[..., Settings],
) -> None:
    app = create_app(settings_factory(db_pool_size=3))
    async with LifespanManager(app):
        engine = app.state.engine
        driver_pool = _driver_pools[engine.sync_engine]
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
            assert own is not None and own >= driver_pool.pool.get_size()
    assert engine.sync_engine not in _driver_pools
    assert driver_pool.pool.is_closing()


async def test_sqlite_has_no_driver_pool(settings_factory: Callable[..., Settings]) -> None:
    app = create_app(settings_factory())
    async with LifespanManager(app):
        if app.state.engine.dialect.name == "sqlite":
            assert app.state.engine.sync_engine not in _driver_pools
        else:
            assert app.state.engine.sync_engine in _driver_pools
