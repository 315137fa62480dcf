"""Orders through the full stack with real `taskhub worker` processes: oversell, kill -9,
SIGTERM, Redis down, malformed entries, expiry, and a randomized workload with crashes.

The API runs in-process (ASGI) with REDIS_URL set, so it runs no dispatcher of its own:
only the worker processes relay and handle events.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from sqlalchemy import text

from tests.factories import Actor, make_user
from tests.fullstack.conftest import (
    WorkerProcess,
    order_status_counts,
    pending_orders,
)
from tests.fullstack.stack import Stack, processed, stock_of
from tests.invariants import assert_stock_invariant
from tests.polling import eventually
from tests.processes import PrivateRedis

pytestmark = [pytest.mark.pg, pytest.mark.redis, pytest.mark.slow]


async def test_oversell_three_workers_exactly_the_stock_is_reserved(
    stack_factory: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    stack: Stack = await stack_factory()
    started = [workers(stack.settings) for _ in range(3)]
    product = await stack.product(stock=50)
    await stack.wait_consumers(3)
    order_ids = await stack.orders([[(product, 1)] for _ in range(200)], parallel=200)
    assert len(set(order_ids)) == 200
    await stack.wait_drained(45, started)
    assert await order_status_counts(stack.engine) == {"RESERVED": 50, "FAILED": 150}
    assert await stock_of(stack.engine, product) == 0
    assert await processed(stack.engine, "orders.reserve") == 200
    await assert_stock_invariant(stack.engine)
    assert all(w.proc.poll() is None for w in started), "a worker died"


async def test_kill_9_mid_batch_then_a_new_worker_settles_every_order_once(
    stack_factory: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    stack: Stack = await stack_factory()
    products = [await stack.product(stock=10_000) for _ in range(3)]
    rng = random.Random(7)
    lines = [
        [(p, rng.randint(1, 3)) for p in rng.sample(products, rng.randint(1, 3))]
        for _ in range(150)
    ]
    await stack.orders(lines)
    # Small batches, so that the first worker is still at it when it is killed: reading up to
    # 100 entries at once, it settled all 150 orders between two polls on a fast machine.
    first = workers(stack.settings, WORKER_CONCURRENCY="4", WORKER_BATCH_SIZE="5")

    async def some_settled() -> bool:
        return await pending_orders(stack.engine) < 150

    await eventually(some_settled, timeout=20, what="the first worker to start settling")
    first.kill9()
    left = await pending_orders(stack.engine)
    assert left > 0, "the worker finished before it could be killed; the test proved nothing"
    second = workers(stack.settings)
    await stack.wait_drained(40, [first, second])
    assert await order_status_counts(stack.engine) == {"RESERVED": 150}
    assert await processed(stack.engine, "orders.reserve") == 150
    async with stack.engine.connect() as conn:
        # One reservation per order line, never two.
        reservations = await conn.scalar(text("SELECT count(*) FROM reservations"))
        items = await conn.scalar(text("SELECT count(*) FROM order_items"))
        reserve_rows = await conn.scalar(
            text("SELECT count(*) FROM stock_movements WHERE reason = 'reserve'")
        )
    assert reservations == items == reserve_rows
    await assert_stock_invariant(stack.engine)


async def test_sigterm_finishes_in_flight_work_and_exits_0(
    stack_factory: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    stack: Stack = await stack_factory()
    # Enough that the worker is still busy when SIGTERM arrives, on a fast machine too.
    n_orders = 400
    product = await stack.product(stock=10_000)
    await stack.orders([[(product, 1)] for _ in range(n_orders)])
    first = workers(stack.settings, WORKER_BATCH_SIZE="10")  # still busy at SIGTERM

    async def some_settled() -> bool:
        return await pending_orders(stack.engine) < n_orders

    await eventually(some_settled, timeout=20, what="the worker to start settling")
    code = await asyncio.to_thread(first.terminate, 20)
    assert code == 0, first.tail()
    # Graceful: whatever it took from the stream, it acknowledged.
    redis = stack.app.state.redis
    summary = await redis.xpending(stack.keys.stream, stack.keys.group)
    assert int(summary["pending"]) == 0, first.tail()
    left = await pending_orders(stack.engine)
    second = workers(stack.settings)
    await stack.wait_drained(30, [first, second])
    assert left > 0, "the worker finished before SIGTERM; the test proved nothing"
    assert await order_status_counts(stack.engine) == {"RESERVED": n_orders}
    assert await processed(stack.engine, "orders.reserve") == n_orders
    assert await stock_of(stack.engine, product) == 10_000 - n_orders
    await assert_stock_invariant(stack.engine)


async def test_orders_accepted_while_redis_is_down_settle_when_it_is_back(
    stack_factory: Callable[..., Any],
    workers: Callable[..., WorkerProcess],
    private_redis: PrivateRedis,
) -> None:
    stack: Stack = await stack_factory(redis_url=private_redis.url)
    worker = workers(stack.settings)
    product = await stack.product(stock=100)
    await stack.order([(product, 1)])
    await stack.wait_drained(20, [worker])
    private_redis.kill()
    created = [await stack.order([(product, 1)]) for _ in range(20)]  # 201 through the outbox
    await asyncio.sleep(0.5)
    assert await pending_orders(stack.engine) == 20, "nothing can settle without Redis"
    private_redis.start()
    await stack.wait_drained(30, [worker])
    assert await order_status_counts(stack.engine) == {"RESERVED": 21}
    assert await stock_of(stack.engine, product) == 100 - 21
    assert len(created) == 20
    assert worker.proc.poll() is None
    await assert_stock_invariant(stack.engine)


async def test_malformed_entry_is_dead_lettered_and_the_worker_goes_on(
    stack_factory: Callable[..., Any],
    workers: Callable[..., WorkerProcess],
    redis_client: aioredis.Redis,
) -> None:
    stack: Stack = await stack_factory()
    worker = workers(stack.settings)
    keys = stack.keys
    await redis_client.xadd(keys.stream, {b"envelope": b'{"id": "nope"}'})
    await redis_client.xadd(keys.stream, {b"garbage": b"\xff\xfe"})
    product = await stack.product(stock=5)
    await stack.orders([[(product, 1)] for _ in range(8)])
    await stack.wait_drained(30, [worker])
    assert await order_status_counts(stack.engine) == {"RESERVED": 5, "FAILED": 3}
    assert await redis_client.xlen(keys.dead) == 2
    assert worker.proc.poll() is None, "the worker crashed on a malformed entry"
    await assert_stock_invariant(stack.engine)


async def test_worker_expires_reservations_past_their_ttl(
    stack_factory: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    stack: Stack = await stack_factory()
    worker = workers(stack.settings, RESERVATION_TTL="PT1S")
    product = await stack.product(stock=3)
    order_id = await stack.order([(product, 2)])

    async def expired() -> bool:
        r = await stack.client.get(f"/api/v2/orders/{order_id}", headers=stack.customer.headers)
        return bool(r.json()["status"] == "CANCELLED")

    try:
        await eventually(expired, timeout=15, what="the reservation to expire")
    except BaseException:
        print(worker.tail())  # noqa: T201
        raise
    await stack.wait_drained(15, [worker])
    assert await stock_of(stack.engine, product) == 3
    await assert_stock_invariant(stack.engine)


async def test_randomized_workload_with_crashes_keeps_the_invariants(
    stack_factory: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    stack: Stack = await stack_factory()
    rng = random.Random(2026)
    running = [workers(stack.settings) for _ in range(2)]
    all_workers = list(running)
    products = [await stack.product(stock=rng.randint(5, 30)) for _ in range(5)]
    customers = [stack.customer, *[await make_user(stack.app, stack.client) for _ in range(2)]]
    owned: list[tuple[int, Actor]] = []
    statuses: list[int] = []
    deadline = time.monotonic() + 10

    async def actor_loop() -> None:
        while time.monotonic() < deadline:
            action = rng.random()
            if action < 0.5 or not owned:
                who = rng.choice(customers)
                lines = [(p, rng.randint(1, 4)) for p in rng.sample(products, rng.randint(1, 3))]
                owned.append((await stack.order(lines, who), who))
                continue
            order_id, who = rng.choice(owned)
            if action < 0.7:
                r = await stack.client.post(
                    f"/api/v2/orders/{order_id}/cancel", headers=who.headers
                )
            elif action < 0.9:
                r = await stack.client.post(f"/api/v2/orders/{order_id}/pay", headers=who.headers)
            else:
                r = await stack.client.patch(
                    f"/api/v2/products/{rng.choice(products)}/stock",
                    params={"delta": rng.randint(-5, 10)},
                    headers=stack.admin.headers,
                )
            statuses.append(r.status_code)
            await asyncio.sleep(rng.uniform(0, 0.01))

    # A generator of its own, so that the actors' draws (which depend on timing) do not
    # change how often and how the workers are crashed.
    fate = random.Random(7)

    async def chaos() -> None:
        while time.monotonic() < deadline - 1:
            await asyncio.sleep(fate.uniform(1.0, 2.0))
            victim = running.pop(fate.randrange(len(running)))
            # SIGTERM only once the worker has installed its handlers (it logs "started"):
            # earlier, the default action kills it, which is just another crash.
            ready = ": started" in victim.log.read_text(errors="replace")
            if fate.random() < 0.5 or not ready:
                victim.kill9()
            else:
                # SIGTERM: finish and ack what is in flight, then exit cleanly.
                code = await asyncio.to_thread(victim.terminate)
                assert code == 0, victim.tail()
            fresh = workers(stack.settings)
            running.append(fresh)
            all_workers.append(fresh)

    await asyncio.gather(*(actor_loop() for _ in range(8)), chaos())
    assert len(all_workers) >= 5, "not enough crashes to prove anything"
    assert set(statuses) <= {200, 409}, sorted(set(statuses))
    await stack.wait_drained(40, all_workers)
    counts = await order_status_counts(stack.engine)
    assert "PENDING" not in counts
    assert sum(counts.values()) == len(owned)
    assert counts.get("RESERVED", 0) + counts.get("PAID", 0) > 0
    await assert_stock_invariant(stack.engine)


async def test_the_api_wakes_the_relay_after_its_commit(
    stack_factory: Callable[..., Any], workers: Callable[..., WorkerProcess]
) -> None:
    # The relay would only poll after 30 s: only the API's NOTIFY (sent after the order's
    # transaction committed) can get the order reserved in time.
    stack: Stack = await stack_factory()
    worker = workers(stack.settings, RELAY_POLL_SECONDS="30")
    await stack.wait_consumers(1)
    product = await stack.product(stock=10)
    await asyncio.sleep(0.5)  # the relay has published what was there, and sleeps
    await stack.order([(product, 1)])
    await stack.wait_drained(5, [worker])
    assert await order_status_counts(stack.engine) == {"RESERVED": 1}
