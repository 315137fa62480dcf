"""Real concurrency against the API, on both shapes (in-process event dispatch).

The full stack with several worker processes, kill -9 and Redis outages is covered in
tests/fullstack.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import update

from taskhub.config import Settings
from taskhub.db import utcnow
from taskhub.driver import in_session
from taskhub.models import Order
from taskhub.orders.service import expire_reservations
from tests.commerce.conftest import (
    make_product,
    place_order,
    wait_settled,
)
from tests.conftest import client_for
from tests.factories import Actor, make_user
from tests.invariants import assert_stock_invariant
from tests.polling import eventually


async def test_no_oversell_under_200_concurrent_orders(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor
) -> None:
    pid = await make_product(client, admin, stock=50)
    buyers = [await make_user(app, client) for _ in range(4)]
    responses = await asyncio.gather(
        *(place_order(client, buyers[i % 4], [(pid, 1)]) for i in range(200))
    )
    assert [r.status_code for r in responses] == [201] * 200
    statuses: dict[int, str] = {}
    for i, buyer in enumerate(buyers):
        ids = [r.json()["id"] for n, r in enumerate(responses) if n % 4 == i]
        statuses.update(await wait_settled(client, buyer, ids, timeout=60))
    assert sum(s == "RESERVED" for s in statuses.values()) == 50
    assert sum(s == "FAILED" for s in statuses.values()) == 150
    stocks = await assert_stock_invariant(app.state.engine)
    assert stocks[pid] == 0


async def test_multi_line_orders_in_opposite_orders_do_not_deadlock(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    a = await make_product(client, admin, stock=30)
    b = await make_product(client, admin, stock=30)
    c = await make_product(client, admin, stock=30)
    shapes = [
        [(a, 2), (b, 1), (c, 1)],
        [(c, 1), (b, 2), (a, 1)],
        [(b, 1), (a, 1)],
        [(c, 2), (a, 2)],
    ]
    responses = await asyncio.gather(
        *(place_order(client, customer, shapes[i % len(shapes)]) for i in range(60))
    )
    ids = [r.json()["id"] for r in responses]
    statuses = await wait_settled(client, customer, ids, timeout=60)
    stocks = await assert_stock_invariant(app.state.engine)
    # All-or-nothing: the units taken equal the lines of the RESERVED orders exactly.
    taken = {a: 0, b: 0, c: 0}
    for i, oid in enumerate(ids):
        if statuses[oid] == "RESERVED":
            for pid, qty in shapes[i % len(shapes)]:
                taken[pid] += qty
    assert {pid: 30 - stocks[pid] for pid in (a, b, c)} == taken
    assert "RESERVED" in statuses.values()


async def test_cancel_racing_reservation_conserves_stock(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    pid = await make_product(client, admin, stock=40)
    rng = random.Random(7)  # noqa: S311

    async def order_then_cancel() -> None:
        r = await place_order(client, customer, [(pid, 1)])
        oid = r.json()["id"]
        await asyncio.sleep(rng.random() * 0.02)  # cancel while PENDING, or just after RESERVED
        c = await client.post(f"/api/v2/orders/{oid}/cancel", headers=customer.headers)
        # Both are right: the cancel came first (200), or the reservation failed first and
        # a FAILED order cannot be cancelled (409 naming it).
        assert c.status_code in (200, 409), c.text
        if c.status_code == 409:
            assert c.json()["current_status"] == "FAILED"

    await asyncio.gather(*(order_then_cancel() for _ in range(40)))

    async def all_released() -> bool:
        stock: int = (await client.get(f"/api/v2/products/{pid}")).json()["stock"]
        return stock == 40

    async with asyncio.timeout(30):
        while not await all_released():
            await asyncio.sleep(0.05)
    orders = (await client.get("/api/v2/orders?limit=200", headers=customer.headers)).json()[
        "items"
    ]
    assert {o["status"] for o in orders} <= {"CANCELLED", "FAILED"}
    await assert_stock_invariant(app.state.engine)


async def test_concurrent_keyed_orders_under_the_quota_are_201_or_409(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    # The quota's lock on the caller and the foreign key of the idempotency key once
    # deadlocked (PostgreSQL answered 500 for most of 40 such requests).
    app = await app_factory(settings_factory(max_open_orders_per_user=20))
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        buyer = await make_user(app, client)
        pid = await make_product(client, admin, stock=1000)
        statuses: list[int] = []
        for round_ in range(5):
            responses = await asyncio.gather(
                *(
                    client.post(
                        "/api/v2/orders",
                        json={"items": [{"product_id": pid, "quantity": 1}]},
                        headers={**buyer.headers, "Idempotency-Key": f"k-{round_}-{i}"},
                    )
                    for i in range(8)
                )
            )
            statuses += [r.status_code for r in responses]
            for r in responses:
                if r.status_code == 409:
                    assert r.json()["type"].endswith("/conflict"), r.text  # the quota
        # Exactly the quota's worth were created, whatever the interleaving.
        assert sorted(statuses) == [201] * 20 + [409] * 20


async def test_pay_and_confirm_refuse_an_expired_reservation_before_the_sweep(
    app_factory: Callable[[Settings], Any], settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(expiry_sweep_seconds=3600)  # the sweep will not come
    app = await app_factory(settings)
    async with client_for(app) as client:
        admin = await make_user(app, client, is_superuser=True)
        buyer = await make_user(app, client)
        pid = await make_product(client, admin, stock=10)
        ids = [(await place_order(client, buyer, [(pid, 1)])).json()["id"] for _ in range(2)]
        assert set((await wait_settled(client, buyer, ids)).values()) == {"RESERVED"}
        past = utcnow() - settings.reservation_ttl - timedelta(seconds=1)
        async with app.state.engine.begin() as connection:
            await connection.execute(update(Order).values(reserved_at=past))
        for oid, verb in zip(ids, ("pay", "confirm"), strict=True):
            r = await client.post(f"/api/v2/orders/{oid}/{verb}", headers=buyer.headers)
            assert r.status_code == 409, r.text
            assert r.json()["current_status"] == "RESERVED"
            assert "expired" in r.json()["detail"]
        # Nothing was consumed: the sweep, when it runs, cancels them and the stock returns.
        async with app.state.sessionmaker() as session, session.begin():
            cutoff = utcnow() - settings.reservation_ttl
            assert await expire_reservations(in_session(session), cutoff=cutoff) == 2
        app.state.events.wake()

        async def released() -> bool:
            stock: int = (await client.get(f"/api/v2/products/{pid}")).json()["stock"]
            return stock == 10

        await eventually(released)
        await assert_stock_invariant(app.state.engine)


async def test_archiving_a_product_is_atomic_with_orders_for_it(
    app: FastAPI, client: httpx.AsyncClient, admin: Actor, customer: Actor
) -> None:
    # An archive that answered 204 while orders for the product were being created left
    # those orders to FAIL with the wrong reason. Now one or the other wins, cleanly.
    created: list[int] = []
    for _ in range(15):
        pid = await make_product(client, admin, stock=100)
        *orders, archived = await asyncio.gather(
            *(place_order(client, customer, [(pid, 1)]) for _ in range(3)),
            client.delete(f"/api/v2/products/{pid}", headers=admin.headers),
        )
        assert archived.status_code in (204, 409), archived.text
        codes = {r.status_code for r in orders}
        if archived.status_code == 204:
            assert codes == {422}, [r.text for r in orders]  # the product is gone for them
        else:
            assert 201 in codes and codes <= {201, 422}
        created += [r.json()["id"] for r in orders if r.status_code == 201]
    statuses = await wait_settled(client, customer, created, timeout=60)
    assert set(statuses.values()) == {"RESERVED"}
    await assert_stock_invariant(app.state.engine)
