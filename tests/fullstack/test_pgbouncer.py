"""The full stack behind PgBouncer in transaction mode (DB_PGBOUNCER=true): the API and real
`taskhub worker` processes reach PostgreSQL only through the suite's pgbouncer; the
relays LISTEN on PostgreSQL directly (DATABASE_LISTEN_URL), or poll when it is not given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.fullstack.conftest import (
    WorkerProcess,
    order_status_counts,
)
from tests.fullstack.stack import Stack, processed, stock_of
from tests.invariants import assert_stock_invariant
from tests.pgbouncer import PgBouncer
from tests.polling import eventually

pytestmark = [pytest.mark.pg, pytest.mark.redis, pytest.mark.slow]


async def relay_listeners(engine: AsyncEngine) -> int:
    """Backends of this database that the relays opened to LISTEN."""
    async with engine.connect() as conn:
        count = await conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name = 'taskhub-relay' AND query LIKE 'LISTEN %'"
            )
        )
        return int(count or 0)


@pytest.mark.parametrize(
    ("listen", "n_workers", "n_orders", "stock"),
    [("direct", 3, 200, 50), ("poll", 2, 60, 20)],  # the fallback, on a smaller load
)
async def test_oversell_workers_behind_pgbouncer(
    stack_factory: Callable[..., Any],
    workers: Callable[..., WorkerProcess],
    pgbouncer: PgBouncer,
    fs_database_url: str,
    listen: str,
    n_workers: int,
    n_orders: int,
    stock: int,
) -> None:
    stack: Stack = await stack_factory(
        database_url=pgbouncer.url_through(fs_database_url), db_pgbouncer=True
    )
    env = {"DB_PGBOUNCER": "true"}
    if listen == "direct":
        env["DATABASE_LISTEN_URL"] = fs_database_url
    started = [workers(stack.settings, **env) for _ in range(n_workers)]
    product = await stack.product(stock=stock)
    await stack.wait_consumers(n_workers)
    if listen == "direct":

        async def listening() -> bool:
            return await relay_listeners(stack.engine) == n_workers

        await eventually(listening, timeout=20, what="every relay to LISTEN on PostgreSQL")
    order_ids = await stack.orders([[(product, 1)] for _ in range(n_orders)], parallel=n_orders)
    assert len(set(order_ids)) == n_orders
    await stack.wait_drained(60, started)
    counts = await order_status_counts(stack.engine)
    assert counts == {"RESERVED": stock, "FAILED": n_orders - stock}
    assert await stock_of(stack.engine, product) == 0
    assert await processed(stack.engine, "orders.reserve") == n_orders
    await assert_stock_invariant(stack.engine)
    assert all(w.proc.poll() is None for w in started), "a worker died"
    # Behind PgBouncer without DATABASE_LISTEN_URL nothing LISTENs: the relays polled.
    assert await relay_listeners(stack.engine) == (n_workers if listen == "direct" else 0)
