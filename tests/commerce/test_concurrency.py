"""Real concurrency against the API, on both shapes (in-process event dispatch).

The full stack with several worker processes, kill -9 and Redis outages is covered in
tests/fullstack.
"""

from __future__ import annotations

import asyncio
import random

import httpx
from fastapi import FastAPI

from tests.commerce.conftest import assert_stock_invariant, make_product, place_order, wait_settled
from tests.factories import Actor, make_user


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
    stocks = await assert_stock_invariant(app)
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
    stocks = await assert_stock_invariant(app)
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
    await assert_stock_invariant(app)
