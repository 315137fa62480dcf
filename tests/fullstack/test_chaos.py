"""Chaos: a randomized workload of orders, cancels, confirms and pays runs against the full
stack while PostgreSQL is cut twice, Redis restarts empty, workers die by kill -9, and a
backlog larger than STREAM_MAXLEN builds up. Afterwards nothing is PENDING, no valid event
was dead-lettered, stock and reservations agree, and no handler applied an event twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from taskhub.db import make_sessionmaker
from taskhub.messaging.outbox import backlog
from tests.factories import Actor, make_user
from tests.fullstack.conftest import (
    WorkerProcess,
    order_status_counts,
)
from tests.fullstack.stack import Stack, processed
from tests.hardening.tcp_proxy import TcpProxy
from tests.invariants import assert_stock_invariant
from tests.processes import PrivateRedis

pytestmark = [pytest.mark.pg, pytest.mark.redis, pytest.mark.slow]

STREAM_MAXLEN = 50
OUTAGE_SECONDS = (5.0, 6.0)


@pytest.fixture
async def pg_proxy(fs_database_url: str) -> AsyncIterator[TcpProxy]:
    """A cuttable TCP proxy in front of the module's PostgreSQL."""
    target = urlsplit(fs_database_url.replace("+asyncpg", ""))
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.cut()


def through(proxy: TcpProxy, url: str) -> str:
    port = urlsplit(url.replace("+asyncpg", "")).port
    proxied = url.replace(f":{port}/", f":{proxy.port}/", 1)
    assert proxied != url
    return proxied


async def outbox_backlog(engine: AsyncEngine) -> int:
    async with make_sessionmaker(engine)() as session:
        return await backlog(session)


async def test_chaos_loses_nothing_and_applies_nothing_twice(
    stack_factory: Callable[..., Any],
    workers: Callable[..., WorkerProcess],
    private_redis: PrivateRedis,
    pg_proxy: TcpProxy,
    fs_database_url: str,
) -> None:
    # The API and the workers reach PostgreSQL through the proxy; the checks go direct.
    stack: Stack = await stack_factory(
        database_url=through(pg_proxy, fs_database_url),
        redis_url=private_redis.url,
        stream_maxlen=STREAM_MAXLEN,
        db_timeout_seconds=2,
    )
    env = {"STREAM_MAXLEN": str(STREAM_MAXLEN), "DB_TIMEOUT_SECONDS": "2"}
    running = [workers(stack.settings, **env) for _ in range(2)]
    every_worker = list(running)
    rng = random.Random(12)
    products = [await stack.product(stock=rng.randint(300, 600)) for _ in range(5)]
    customers = [stack.customer, *[await make_user(stack.app, stack.client) for _ in range(2)]]
    owned: list[tuple[int, Actor]] = []
    statuses: Counter[int] = Counter()
    stop = asyncio.Event()

    async def order(who: Actor) -> None:
        lines = [(p, rng.randint(1, 3)) for p in rng.sample(products, rng.randint(1, 3))]
        r = await stack.client.post(
            "/api/v2/orders",
            json={"items": [{"product_id": p, "quantity": q} for p, q in lines]},
            headers=who.headers,
        )
        statuses[r.status_code] += 1
        if r.status_code == 201:
            owned.append((r.json()["id"], who))

    async def actor() -> None:
        while not stop.is_set():
            action = rng.random()
            if action < 0.5 or not owned:
                await order(rng.choice(customers))
            else:
                order_id, who = rng.choice(owned)
                verb = "cancel" if action < 0.75 else "pay" if action < 0.92 else "confirm"
                r = await stack.client.post(
                    f"/api/v2/orders/{order_id}/{verb}", headers=who.headers
                )
                statuses[r.status_code] += 1
            await asyncio.sleep(rng.uniform(0.005, 0.03))

    def replace_worker() -> None:
        victim = running.pop(0)
        victim.kill9()
        fresh = workers(stack.settings, **env)
        running.append(fresh)
        every_worker.append(fresh)

    backlog_seen = 0

    async def chaos() -> None:
        nonlocal backlog_seen
        await asyncio.sleep(1.5)
        await pg_proxy.cut()  # 1: PostgreSQL down for everyone
        await asyncio.sleep(OUTAGE_SECONDS[0])
        await pg_proxy.restore()
        await asyncio.sleep(1.5)
        replace_worker()  # 2: kill -9
        await asyncio.sleep(1.0)
        private_redis.kill()  # 3: Redis restarts empty, with entries pending and unread
        await asyncio.sleep(0.5)
        private_redis.start()
        await asyncio.sleep(1.5)
        await pg_proxy.cut()  # 4: PostgreSQL down again, and a worker dies meanwhile
        await asyncio.sleep(OUTAGE_SECONDS[1] / 2)
        replace_worker()
        await asyncio.sleep(OUTAGE_SECONDS[1] / 2)
        await pg_proxy.restore()
        await asyncio.sleep(1.0)
        for worker in running:  # 5: no worker at all while orders pour in
            worker.kill9()
        running.clear()
        gate = asyncio.Semaphore(10)

        async def one() -> None:
            async with gate:
                await order(stack.customer)

        await asyncio.gather(*(one() for _ in range(STREAM_MAXLEN * 3)))
        backlog_seen = await outbox_backlog(stack.engine)
        for _ in range(2):
            fresh = workers(stack.settings, **env)
            running.append(fresh)
            every_worker.append(fresh)
        await asyncio.sleep(2.0)
        stop.set()

    started = time.monotonic()
    await asyncio.gather(*(actor() for _ in range(6)), chaos())
    await stack.wait_drained(60, every_worker)
    elapsed = time.monotonic() - started

    assert backlog_seen > STREAM_MAXLEN, "the backlog never exceeded STREAM_MAXLEN"
    assert len(every_worker) == 6
    assert set(statuses) <= {200, 201, 409, 503}, statuses
    assert statuses[201] > STREAM_MAXLEN * 3, statuses
    counts = await order_status_counts(stack.engine)
    assert "PENDING" not in counts, counts
    # No valid event was dead-lettered (the dead-letter stream did not survive the Redis
    # restart, the workers' logs did).
    assert int(await stack.app.state.redis.xlen(stack.keys.dead)) == 0
    for worker in every_worker:
        assert "dead-lettered" not in worker.log.read_text(errors="replace"), worker.tail()
    await assert_stock_invariant(stack.engine)
    # Every event applied exactly once: one processed record per outbox event, and no
    # ledger row twice for one order and product.
    async with stack.engine.connect() as conn:
        events: dict[str, int] = dict(
            (await conn.execute(text("SELECT type, count(*) FROM outbox GROUP BY type"))).all()
        )
        twice = await conn.scalar(
            text(
                "SELECT count(*) FROM (SELECT order_id, product_id, reason FROM stock_movements "
                "WHERE order_id IS NOT NULL GROUP BY order_id, product_id, reason "
                "HAVING count(*) > 1) AS dup"
            )
        )
        orders = await conn.scalar(text("SELECT count(*) FROM orders"))
    assert events["order.created"] == orders
    assert await processed(stack.engine, "orders.reserve") == events["order.created"]
    assert await processed(stack.engine, "orders.release") == events.get("order.cancelled", 0)
    assert twice == 0, f"{twice} ledger rows applied twice"
    print(f"chaos: {sum(counts.values())} orders {dict(counts)}, {dict(statuses)}, {elapsed:.1f}s")  # noqa: T201
